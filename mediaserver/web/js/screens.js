// Screens (pre-join, waiting, meeting, message), the status line, toasts, and the
// message screen with its table of titles and texts for every way a meeting can end.

import { $, state } from "./state.js";
import { stopMedia } from "./peers.js";

export function show(screen) {
  for (const s of document.querySelectorAll(".screen")) s.hidden = s.id !== `screen-${screen}`;
}

export function status(text) {
  $("status-line").textContent = text || "";
}

export function toast(text) {
  const t = $("toast");
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.hidden = true), 4000);
}

function formatTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export const MESSAGES = {
  link_revoked: ["This meeting was cancelled", "The organizer cancelled this meeting."],
  link_not_found: ["Meeting not found", "Check the link in your invitation."],
  link_not_open: ["This meeting has not started yet", (m) => `You can join from ${formatTime(m.opens_at)}.`],
  link_ended: ["This meeting has ended", (m) => `It closed at ${formatTime(m.closes_at)}.`],
  link_not_hosted: ["This meeting is hosted elsewhere", (m) => m.join_url ? `Join at ${m.join_url}` : ""],
  room_full: ["The meeting is full", "Try again when someone has left."],
  guests_full: ["The meeting is full", "No more guests can join right now."],
  invite_full: ["This invitation is in use", "Too many people are using this guest invitation right now."],
  refused: ["You were not let in", (m) => m.message || "The host did not let you in."],
  guests_denied: ["Guests cannot join this meeting", "Ask the organizer for an invitation."],
  room_locked: ["The meeting is locked", "The host has locked this meeting."],
  lobby_timeout: ["Nobody let you in", "Nobody admitted you in time. You can try again."],
  lobby_full: ["The waiting room is full", "Too many people are waiting to be let in. Try again in a moment."],
  removed: ["You were removed from the meeting", "A host removed you from this meeting."],
  invalid_token: ["This personal link is not valid", "It may have expired. Ask for a new link."],
  invalid_invite: ["This invitation is not valid", "Ask the organizer for a new invitation."],
  ended_by_host: ["The meeting has ended", "The host ended the meeting for everyone."],
  server_shutdown: ["The meeting was interrupted", "The server is restarting. Try again in a moment."],
  connection_failed: ["Connection lost", "We could not reconnect to the meeting."],
  left: ["You left the meeting", "You can close this tab."],
  shutting_down: ["The server is restarting", "Try again in a moment."],
  unavailable: ["The meeting service is busy", "It could not place your meeting right now. Try again in a moment."],
};

export function message(code, details = {}) {
  const entry = MESSAGES[code] || ["Something went wrong", details.message || code];
  state.phase = "ended";
  stopMedia();
  const ws = state.ws;
  state.ws = null;
  if (ws && ws.readyState <= WebSocket.OPEN) setTimeout(() => ws.close(), 100);
  const [title, text] = entry;
  $("message-heading").textContent = title;
  $("message-text").textContent = typeof text === "function" ? text(details) : text;
  $("message-retry").hidden = !["lobby_timeout", "connection_failed", "room_full", "guests_full", "server_shutdown", "refused", "shutting_down", "link_not_open", "unavailable", "lobby_full"].includes(code);
  document.title = title;
  status(title);
  show("message");
  $("message-heading").focus();
}
