// Receiving (the subscriber connection): answering subscribe offers and putting each
// track on its tile.

import { state } from "./state.js";
import { send } from "./signalling.js";
import { iceGathered, newPeer } from "./peers.js";
import { ensureTile, updateTileBadges, renderTileStates } from "./tiles.js";
import { watchTileSize } from "./videosize.js";
import { ensureScreenTile } from "./screenshare.js";

export async function onSubscribeOffer(m) {
  let old = null;
  if (m.restart && state.subscriber) {
    // the server replaced our receiving connection: answer on a new one and keep the
    // old one (its media still plays) until the new one is connected
    old = state.subscriber;
    state.subscriber = null;
    // the new connection's mids start again at "0": let its tracks take over the tiles
    for (const el of document.querySelectorAll(".tile video, .tile audio")) el.dataset.mid = "";
    state.tracks = {};
  }
  if (!state.subscriber) {
    const pc = newPeer("subscriber");
    state.subscriber = pc;
    pc.ontrack = (ev) => attachTrack(ev.transceiver.mid, ev.track);
  }
  if (old) {
    const fresh = state.subscriber;
    const retire = () => { clearTimeout(timer); old.close(); };
    const timer = setTimeout(retire, 10000);
    fresh.addEventListener("connectionstatechange", () => {
      // the server forwards on both until the new one has media: a second of overlap
      if (fresh.connectionState === "connected") setTimeout(retire, 1000);
      if (["failed", "closed"].includes(fresh.connectionState)) retire();
    });
  }
  const pc = state.subscriber;
  const previous = state.tracks;
  state.tracks = m.tracks || {};
  await pc.setRemoteDescription({ type: "offer", sdp: m.sdp });
  await pc.setLocalDescription(await pc.createAnswer());
  await iceGathered(pc);
  send({ type: "subscribe_answer", sdp: pc.localDescription.sdp, revision: m.revision });
  for (const mid of Object.keys(previous)) if (!(mid in state.tracks)) detachMid(mid, previous[mid]);
  for (const t of pc.getTransceivers()) if (t.mid in state.tracks && t.receiver.track) attachTrack(t.mid, t.receiver.track);
}

function attachTrack(mid, track) {
  const info = state.tracks[mid];
  if (!info) return;
  const tile = info.source === "screen" ? ensureScreenTile(info) : ensureTile(info.participant_id);
  const el = tile.querySelector(info.kind === "video" ? "video" : "audio");
  if (el.dataset.mid === mid && el.srcObject) return;
  el.dataset.mid = mid;
  el.srcObject = new MediaStream([track]);
  el.play?.().catch(() => {});
  if (info.kind === "video") {
    tile.classList.remove("has-video"); // shown from its first frame on, not as a black box
    const shown = () => {
      if (el.dataset.mid === mid && el.videoWidth > 0) {
        tile.classList.add("has-video");
        updateTileBadges();
        renderTileStates();
      }
    };
    el.addEventListener("loadeddata", shown, { once: true });
    el.addEventListener("resize", shown, { once: true });
  }
  tile.dataset[info.kind] = info.publication_id;
  if (info.kind === "video") watchTileSize(tile);
  updateTileBadges();
  renderTileStates();
}

export function detachMid(mid, info) {
  const tile = info.source === "screen"
    ? document.querySelector(`.tile.screen[data-owner="${info.participant_id}"]`)
    : document.querySelector(`.tile[data-participant="${info.participant_id}"]`);
  if (!tile) return;
  const el = tile.querySelector(info.kind === "video" ? "video" : "audio");
  if (el.dataset.mid === mid) {
    el.srcObject = null;
    if (info.kind === "video") tile.classList.remove("has-video");
  }
}
