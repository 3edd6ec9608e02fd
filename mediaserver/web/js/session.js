// Joining, rejoining after a lost socket, leaving, and the participant key kept per link.

import { slug, state } from "./state.js";
import { status, toast, message } from "./screens.js";
import { connect, send, request, ServerError } from "./signalling.js";
import { closePeers } from "./peers.js";

// The participant key of this meeting (docs/protocol.md §13), kept per link URL so that
// a removal holds against this browser when it comes back.
const KEY_ITEM = `mediaserver.key.${slug}`;
function storedKey() {
  try {
    return localStorage.getItem(KEY_ITEM);
  } catch (e) {
    return null;
  }
}
export function keepKey(key) {
  if (typeof key !== "string") return;
  try {
    localStorage.setItem(KEY_ITEM, key);
  } catch (e) {
    // storage disabled: the key lives as long as this page
  }
  state.key = key;
}

export async function join() {
  state.phase = "joining";
  const key = state.key || storedKey();
  const reply = await request(key ? { ...state.joinMessage, key } : state.joinMessage);
  return reply; // "joined" and "lobby" are also handled by HANDLERS
}

export async function reconnect() {
  const wasWaiting = state.phase === "waiting";
  state.phase = "reconnecting";
  closePeers();
  const delays = [500, 1000, 2000, 4000];
  for (let attempt = 1; attempt <= delays.length; attempt++) {
    status(`Connection lost. Reconnecting (attempt ${attempt} of ${delays.length})…`);
    toast("Connection lost. Reconnecting…");
    await new Promise((r) => setTimeout(r, delays[attempt - 1]));
    try {
      await connect();
      await join();
      state.reconnects += 1; // window.meeting.reconnects: signalling came back this often
      status(wasWaiting ? "In the waiting room" : "Reconnected");
      return;
    } catch (e) {
      if (e instanceof ServerError) {
        message(e.code, e.reply);
        return;
      }
    }
  }
  message("connection_failed");
}

export function leave() {
  state.leaving = true;
  send({ type: "leave" });
  message("left");
  setTimeout(() => state.ws?.close(), 200);
}
