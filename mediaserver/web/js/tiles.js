// Tiles: one per participant in the grid, their badges, connection labels and layout.

import { $, state } from "./state.js";
import { send } from "./signalling.js";
import { layoutStage } from "./screenshare.js";
import { pinButton } from "./pins.js";

export function nameOf(id) {
  if (state.me && id === state.me.id) return "You";
  return state.participants.get(id)?.name || "Someone";
}

export function ensureTile(id, self = false) {
  let tile = document.querySelector(`.tile[data-participant="${id}"]`);
  if (tile) return tile;
  tile = document.createElement("figure");
  tile.className = "tile" + (self ? " self" : "");
  tile.dataset.participant = id;
  const video = document.createElement("video");
  video.autoplay = true;
  video.playsInline = true;
  video.muted = true;
  const audio = document.createElement("audio");
  audio.autoplay = true;
  if (self) audio.muted = true;
  const caption = document.createElement("figcaption");
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = nameOf(id);
  const badge = document.createElement("span");
  badge.className = "badge";
  badge.setAttribute("aria-label", "microphone off");
  badge.textContent = "🔇";
  badge.hidden = true;
  caption.append(name, badge);
  const initials = document.createElement("div");
  initials.className = "initials";
  initials.setAttribute("aria-hidden", "true");
  initials.textContent = (nameOf(id) || "?").slice(0, 1).toUpperCase();
  const conn = document.createElement("p");
  conn.className = "conn";
  conn.setAttribute("role", "status");
  conn.hidden = true;
  tile.append(video, initials, conn, audio, caption);
  video.setAttribute("aria-label", `${nameOf(id)} video`);
  if (!self) caption.append(pinButton(id));
  if (!self && state.me?.role === "host") {
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "remove";
    remove.textContent = "Remove";
    remove.setAttribute("aria-label", `Remove ${nameOf(id)} from the meeting`);
    remove.addEventListener("click", () => {
      if (confirm(`Remove ${nameOf(id)} from the meeting?`)) send({ type: "remove_participant", participant_id: id });
    });
    caption.append(remove);
  }
  $("grid").append(tile);
  layoutGrid();
  renderTileStates();
  return tile;
}

export function removeTile(id) {
  document.querySelector(`.tile[data-participant="${id}"]`)?.remove();
  document.querySelector(`.tile.screen[data-owner="${id}"]`)?.remove();
  layoutStage();
  layoutGrid();
}

export function layoutGrid() {
  if ($("grid").classList.contains("has-stage")) {
    $("grid").style.setProperty("--cols", "6"); // under a screen share: a strip
    return;
  }
  const n = $("grid").children.length;
  const cols = Math.ceil(Math.sqrt(n));
  $("grid").style.setProperty("--cols", String(cols));
}

export function updateTileBadges() {
  for (const tile of document.querySelectorAll(".tile")) {
    const audioPub = tile.dataset.audio;
    const muted = tile.classList.contains("self") ? state.micMuted : audioPub && state.mutedPublications.has(audioPub);
    tile.querySelector(".badge").hidden = !muted;
    const videoPub = tile.dataset.video;
    const videoEl = tile.querySelector("video");
    if (videoPub) tile.classList.toggle("has-video", !state.mutedPublications.has(videoPub) && videoEl.videoWidth > 0);
  }
}

const TILE_STATE_TEXT = { connecting: "Connecting…", lost: "Connection lost, retrying…" };

export function renderTileStates() {
  for (const tile of document.querySelectorAll(".tile")) {
    const self = tile.classList.contains("self");
    const which = self ? "publisher" : "subscriber";
    let text = TILE_STATE_TEXT[state.media[which]] || "";
    // a remote tile whose video has not shown a frame yet is still connecting
    if (!self && !text && tile.dataset.video && !tile.classList.contains("has-video") && !state.mutedPublications.has(tile.dataset.video)) text = TILE_STATE_TEXT.connecting;
    if (self && !state.publisher) text = "";
    const label = tile.querySelector(".conn");
    label.textContent = text;
    label.hidden = !text;
    tile.classList.toggle("media-lost", state.media[which] === "lost");
  }
}
