// Media connections: creating, watching and recovering the publisher and subscriber
// RTCPeerConnections, and the notice when media never connects.

import { $, state } from "./state.js";
import { request } from "./signalling.js";
import { offerPublisher } from "./publisher.js";
import { detachMid } from "./subscriber.js";
import { renderTileStates } from "./tiles.js";

export function stopMedia() {
  if (state.localStream) for (const t of state.localStream.getTracks()) t.stop();
  state.localStream = null;
  closePeers();
}

export function closePeers() {
  for (const pc of [state.publisher, state.subscriber]) if (pc) pc.close();
  state.publisher = state.subscriber = null;
  state.subQueue = Promise.resolve();
  state.media = { publisher: "idle", subscriber: "idle" };
}

export function iceGathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", check);
    setTimeout(resolve, 5000);
  });
}

export function newPeer(which) {
  const pc = new RTCPeerConnection({ iceServers: state.iceServers, bundlePolicy: "max-bundle" });
  let timer = null;
  const watch = () => {
    if (pc !== state[which]) return; // replaced meanwhile
    const s = pc.connectionState;
    clearTimeout(timer);
    if (s === "connected") {
      state.mediaEverConnected = true;
      $("media-problem").hidden = true;
      setMediaState(which, "connected");
    } else if (s === "failed") {
      recoverMedia(which, pc);
    } else if (s === "disconnected") {
      // brief losses heal by themselves; after 3 s start a fresh connection
      setMediaState(which, "lost");
      timer = setTimeout(() => recoverMedia(which, pc), 3000);
    }
  };
  pc.addEventListener("connectionstatechange", watch);
  setMediaState(which, state.media[which] === "lost" ? "lost" : "connecting");
  return pc;
}

async function recoverMedia(which, failed) {
  if (state.phase !== "meeting" || state[which] !== failed || failed.recovering) return;
  failed.recovering = true;
  state.mediaRestarts += 1;
  setMediaState(which, state.mediaEverConnected ? "lost" : "connecting");
  try {
    if (which === "publisher") {
      const reply = await offerPublisher(true);
      state.myPublications = reply.publications;
    } else {
      failed.close();
      state.subscriber = null;
      for (const [mid, info] of Object.entries(state.tracks)) detachMid(mid, info);
      state.tracks = {};
      await request({ type: "restart_subscriber" });
    }
  } catch (err) {
    // signalling trouble is handled by the socket's own reconnect; try again later
    failed.recovering = false;
    setTimeout(() => recoverMedia(which, failed), 2000);
  }
}

function setMediaState(which, value) {
  state.media[which] = value;
  renderTileStates();
}

export function mediaProblem() {
  if (state.phase !== "meeting" || state.mediaEverConnected) return;
  if (!state.publisher && !state.subscriber) return; // nothing to connect (yet)
  const relay = state.iceServers.some((s) => [].concat(s.urls).some((u) => /^turns?:/.test(u)));
  const box = $("media-problem");
  box.textContent = relay
    ? "Your audio and video cannot connect. Your network probably blocks UDP and the TURN relay could not be reached either. Try another network, or ask your IT team to allow the meeting's TURN server (TCP 443)."
    : "Your audio and video cannot connect. Your network probably blocks UDP, and this server has no TURN relay configured. Try another network, or ask the meeting's organiser to set up TURN.";
  box.hidden = false;
}
