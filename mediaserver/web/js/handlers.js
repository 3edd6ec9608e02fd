// What the page does with each server message (docs/protocol.md).

import * as recording from "./recording.js";
import { $, state } from "./state.js";
import { show, status, toast, MESSAGES, message } from "./screens.js";
import { keepKey } from "./session.js";
import { enterMeeting, renderPeople, renderSpeaking } from "./meeting.js";
import { setLocalMuted } from "./controls.js";
import { addKnock, removeKnock } from "./host.js";
import { onSubscribeOffer } from "./subscriber.js";
import { ensureTile, removeTile, updateTileBadges } from "./tiles.js";
import { stopScreenShare, showScreenTile } from "./screenshare.js";

export const HANDLERS = {
  joined: (m) => enterMeeting(m).catch((e) => {
    console.error("could not start the meeting", e);
    toast("Your camera and microphone could not be connected.");
  }),
  lobby: (m) => {
    keepKey(m.key);
    recording.onLobby(m);
    state.phase = "waiting";
    show("waiting");
    $("waiting-status").textContent = m.host_present
      ? "The host has been told you are here."
      : "Waiting for the host to join…";
    status("In the waiting room");
  },
  refused: (m) => {
    if (m.code === "server_shutdown" || m.code === "moved") {
      status("The server is restarting. Reconnecting…");
      return; // the socket closes next: reconnect
    }
    message(m.code && m.code !== "refused" && m.code in MESSAGES ? m.code : "refused", m);
  },
  removed: (m) => message("removed", m),
  room_closed: (m) => {
    // a restarting server: keep the meeting screen and reconnect when the socket drops
    if (m.reason === "server_shutdown" || m.reason === "moved") {
      status("The server is restarting. Reconnecting…");
      return;
    }
    message(m.reason in MESSAGES ? m.reason : "ended_by_host", m);
  },
  error: (m) => {
    if (m.code === "join_timeout") return; // only an idle pre-join socket gets this
    if (m.code in MESSAGES) message(m.code, m); // e.g. lobby_timeout, room_full after a knock
    else console.warn("server error", m);
  },
  participant_joined: (m) => {
    state.participants.set(m.participant.id, m.participant);
    renderPeople();
    ensureTile(m.participant.id);
  },
  participant_left: (m) => {
    state.participants.delete(m.participant_id);
    removeTile(m.participant_id);
    renderPeople();
  },
  subscribe_offer: (m) => {
    state.subQueue = state.subQueue.then(() => onSubscribeOffer(m)).catch((e) => console.error(e));
  },
  publication_muted: (m) => {
    if (m.muted) state.mutedPublications.add(m.publication_id);
    else state.mutedPublications.delete(m.publication_id);
    const mine = state.myPublications.find((p) => p.id === m.publication_id);
    if (mine?.source === "screen") { if (m.muted) stopScreenShare(false); }
    else if (mine && m.by) setLocalMuted(mine.kind, m.muted, false);
    showScreenTile(m.publication_id, !m.muted);
    updateTileBadges();
  },
  moderated: (m) => {
    if (m.action === "muted") {
      toast(`A host turned off your ${m.kind === "audio" ? "microphone" : "camera"}${m.locked ? " and locked it" : ""}.`);
      setLocalMuted(m.kind, true, false);
    } else if (m.action === "screen_share_stopped") {
      toast("A host stopped your screen share.");
      stopScreenShare(false);
    } else if (m.action === "unlocked") {
      toast(`You can turn your ${m.kind === "audio" ? "microphone" : "camera"} back on.`);
    }
  },
  active_speaker: (m) => {
    state.activeSpeaker = m.participant_id;
    for (const tile of document.querySelectorAll(".tile")) {
      tile.classList.toggle("speaking", tile.dataset.participant === m.participant_id);
    }
  },
  speaking_stats: (m) => {
    state.speaking = m.speaking_seconds;
    renderSpeaking();
  },
  knock: (m) => {
    if (typeof m.waiting === "number") state.lobbyWaiting = m.waiting - 1; // addKnock adds it
    addKnock(m.knock);
  },
  knock_resolved: (m) => removeKnock(m.knock_id),
  knock_withdrawn: (m) => removeKnock(m.knock_id),
  recording: (m) => recording.onRecording(m, toast),
  room_locked: (m) => {
    state.locked = m.locked;
    const b = $("lock-room");
    b.textContent = m.locked ? "Unlock meeting" : "Lock meeting";
    toast(m.locked ? "The meeting is locked." : "The meeting is unlocked.");
  },
  guest_policy: (m) => toast(`Guest policy: ${m.policy}`),
};
