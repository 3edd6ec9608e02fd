// Screen sharing: sharing ours, and the stage tile for someone else's.

import { $, state } from "./state.js";
import { toast } from "./screens.js";
import { send, request } from "./signalling.js";
import { nameOf, layoutGrid } from "./tiles.js";

// A screen share is a second video publication (source "screen") on the publisher
// connection. Publications are never removed: stopping mutes it (and the track is
// taken off the sender); sharing again puts a new track on the same transceiver.
export function screenSources() {
  const mid = state.screenTransceiver?.mid;
  return mid != null && state.screenTrack ? { sources: { [mid]: "screen" } } : {};
}

export async function startScreenShare() {
  let stream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  } catch (e) {
    toast("Screen sharing was cancelled or is not allowed.");
    return;
  }
  const track = stream.getVideoTracks()[0];
  if (!track || !state.publisher) return;
  track.contentHint = "detail";
  track.addEventListener("ended", () => stopScreenShare(true));
  state.screenTrack = track;
  $("share-screen").textContent = "Stop sharing";
  const mine = state.myPublications.find((p) => p.source === "screen");
  if (state.screenTransceiver && mine) {
    await state.screenTransceiver.sender.replaceTrack(track);
    request({ type: "mute", publication_id: mine.id, muted: false }).catch((e) => {
      toast(e.code === "locked_by_host" ? "A host has turned off video for now." : "Screen sharing failed.");
      stopScreenShare(false);
    });
    return;
  }
  const pc = state.publisher;
  state.screenTransceiver = pc.addTransceiver(track, { direction: "sendonly" });
  await pc.setLocalDescription(await pc.createOffer());
  const reply = await request({ type: "publish", sdp: pc.localDescription.sdp, ...screenSources() });
  await pc.setRemoteDescription({ type: "answer", sdp: reply.sdp });
  state.myPublications = reply.publications;
}

export function stopScreenShare(tellServer) {
  const track = state.screenTrack;
  if (!track) return;
  state.screenTrack = null;
  track.stop();
  state.screenTransceiver?.sender.replaceTrack(null).catch(() => {});
  $("share-screen").textContent = "Share screen";
  const mine = state.myPublications.find((p) => p.source === "screen");
  if (tellServer && mine) send({ type: "mute", publication_id: mine.id, muted: true });
}

export function ensureScreenTile(info) {
  let tile = document.querySelector(`.tile.screen[data-owner="${info.participant_id}"]`);
  if (tile) return tile;
  tile = document.createElement("figure");
  tile.className = "tile screen";
  tile.dataset.owner = info.participant_id;
  const video = document.createElement("video");
  video.autoplay = true;
  video.playsInline = true;
  video.muted = true;
  video.setAttribute("aria-label", `${nameOf(info.participant_id)} screen`);
  const audio = document.createElement("audio"); // unused: keeps the tile's shape
  const caption = document.createElement("figcaption");
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = `${nameOf(info.participant_id)} (screen)`;
  const badge = document.createElement("span");
  badge.className = "badge";
  badge.hidden = true;
  caption.append(name, badge);
  tile.hidden = state.mutedPublications.has(info.publication_id);
  if (state.me?.role === "host") {
    const stop = document.createElement("button");
    stop.type = "button";
    stop.className = "remove";
    stop.textContent = "Stop share";
    stop.setAttribute("aria-label", `Stop ${nameOf(info.participant_id)}'s screen share`);
    stop.addEventListener("click", () => send({ type: "stop_screen_share", participant_id: info.participant_id }));
    caption.append(stop);
  }
  const conn = document.createElement("p");
  conn.className = "conn";
  conn.setAttribute("role", "status");
  conn.hidden = true;
  tile.append(video, conn, audio, caption);
  $("grid").prepend(tile);
  layoutStage();
  return tile;
}

export function showScreenTile(publicationId, visible) {
  const tile = [...document.querySelectorAll(".tile.screen")].find((t) => t.dataset.video === publicationId);
  if (!tile) return;
  tile.hidden = !visible;
  layoutStage();
}

// With a visible screen share the grid becomes a stage: the share spans the width,
// camera tiles form a strip of small tiles under it.
export function layoutStage() {
  const staged = [...document.querySelectorAll(".tile.screen")].some((t) => !t.hidden);
  $("grid").classList.toggle("has-stage", staged);
  layoutGrid();
}
