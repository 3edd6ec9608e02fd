// Video-size reporting (video_size) and pausing of off-screen videos.

import { send } from "./signalling.js";

// Each remote video tile reports the size it is drawn at (device pixels; 0 x 0 when
// hidden or scrolled off screen) in a debounced video_size message, and off-screen
// videos are paused.
const sizeTimers = new Map();
const sentSizes = new Map();
let sizeObserver = null;
let viewObserver = null;

function tileSize(tile) {
  if (tile.dataset.offscreen === "1" || !tile.isConnected) return [0, 0];
  const r = tile.getBoundingClientRect();
  const dpr = window.devicePixelRatio || 1;
  return [Math.round(r.width * dpr), Math.round(r.height * dpr)];
}

function reportTileSize(tile) {
  const pub = tile.dataset.video;
  if (!pub || tile.classList.contains("self")) return;
  clearTimeout(sizeTimers.get(pub));
  sizeTimers.set(pub, setTimeout(() => {
    const [width, height] = tileSize(tile);
    const key = `${width}x${height}`;
    if (sentSizes.get(pub) === key) return;
    sentSizes.set(pub, key);
    send({ type: "video_size", publication_id: pub, width, height });
  }, 250));
}

export function watchTileSize(tile) {
  if (tile.dataset.sizeWatched) { reportTileSize(tile); return; }
  tile.dataset.sizeWatched = "1";
  sizeObserver ??= new ResizeObserver((entries) => entries.forEach((e) => reportTileSize(e.target)));
  viewObserver ??= new IntersectionObserver((entries) => {
    for (const e of entries) {
      const video = e.target.querySelector("video");
      e.target.dataset.offscreen = e.isIntersecting ? "0" : "1";
      if (video) (e.isIntersecting ? video.play?.().catch(() => {}) : video.pause());
      reportTileSize(e.target);
    }
  });
  sizeObserver.observe(tile);
  viewObserver.observe(tile);
  reportTileSize(tile);
}
