// Entering the meeting (the joined message), the people list and speaking time.

import * as recording from "./recording.js";
import { $, state } from "./state.js";
import { show, status } from "./screens.js";
import { keepKey } from "./session.js";
import { HANDLERS } from "./handlers.js";
import { addKnock } from "./host.js";
import { mediaProblem } from "./peers.js";
import { publish } from "./publisher.js";
import { nameOf, ensureTile } from "./tiles.js";
import { restorePins } from "./pins.js";

export async function enterMeeting(m) {
  keepKey(m.key);
  state.phase = "meeting";
  state.me = { id: m.participant_id, role: m.role };
  state.simulcast = m.simulcast !== false;
  state.iceServers = (m.ice_servers || []).map((s) => ({ urls: s.urls, username: s.username, credential: s.credential }));
  state.participants.clear();
  for (const p of m.participants) {
    state.participants.set(p.id, p);
    for (const pub of p.publications || []) if (pub.muted) state.mutedPublications.add(pub.id);
  }
  if (m.share_url) state.shareUrl = m.share_url;
  if (m.title) {
    $("meeting-title").textContent = m.title;
  }
  $("grid").replaceChildren();
  ensureTile(state.me.id, true);
  for (const p of m.participants) ensureTile(p.id);
  restorePins(m.participants);
  renderPeople();
  $("host-panel").hidden = m.role !== "host";
  recording.onJoined(m);
  state.locked = !!m.locked;
  $("lock-room").textContent = state.locked ? "Unlock meeting" : "Lock meeting";
  state.knocks.clear();
  state.lobbyWaiting = m.lobby_waiting || 0;
  for (const k of m.lobby || []) addKnock(k);
  if (m.active_speaker) HANDLERS.active_speaker({ participant_id: m.active_speaker });
  show("meeting");
  status(m.role === "host" ? "You are a host" : "");
  document.title = m.title || "Meeting";
  state.mediaEverConnected = false;
  $("media-problem").hidden = true;
  clearTimeout(state.mediaTimer);
  state.mediaTimer = setTimeout(mediaProblem, 15000);
  await publish();
}

export function renderPeople() {
  const ul = $("people");
  ul.replaceChildren();
  const everyone = [[state.me?.id, { name: "You", role: state.me?.role }], ...state.participants.entries()];
  for (const [id, p] of everyone) {
    if (!id) continue;
    const li = document.createElement("li");
    li.textContent = `${id === state.me?.id ? "You" : p.name}${p.role && p.role !== "guest" ? ` (${p.role})` : ""}`;
    ul.append(li);
    const name = document.querySelector(`.tile[data-participant="${id}"] .name`);
    if (name) name.textContent = nameOf(id);
  }
}

export function renderSpeaking() {
  const ol = $("speaking");
  ol.replaceChildren();
  const rows = Object.entries(state.speaking).sort((a, b) => b[1] - a[1]);
  for (const [id, seconds] of rows) {
    const li = document.createElement("li");
    const total = Math.round(seconds);
    const m = Math.floor(total / 60);
    const s = total % 60;
    li.textContent = `${nameOf(id)}: ${m ? `${m} min ` : ""}${s} s`;
    ol.append(li);
  }
}
