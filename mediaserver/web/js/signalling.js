// The signalling connection (docs/protocol.md) on /ws: hello, request/reply by id,
// server messages dispatched to HANDLERS, and a ping that finds a dead socket.

import { state } from "./state.js";
import { reconnect } from "./session.js";
import { HANDLERS } from "./handlers.js";

export function connect() {
  return new Promise((resolve, reject) => {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const old = state.ws;
    const ws = new WebSocket(`${proto}//${location.host}/ws`);
    state.ws = ws;
    if (old && old.readyState <= WebSocket.OPEN) old.close();
    ws.onopen = async () => {
      try {
        await request({ type: "hello", version: 1, client: "web" });
        watchSignalling(ws);
        resolve();
      } catch (e) {
        reject(e);
      }
    };
    ws.onerror = () => reject(new Error("websocket error"));
    ws.onmessage = (ev) => {
      if (ws === state.ws) handle(JSON.parse(ev.data)); // ignore sockets we replaced
    };
    ws.onclose = () => onSocketClosed(ws);
  });
}

// Dead signalling (the node holding the socket paused or cut off, a relay that lost
// the session): a ping every 10 s; no answer (pong or error) within 5 s drops the socket
// and reconnects. Media whose connection failed (or stays disconnected for 5 s) too.
const PING_MS = 10000;
const PING_TIMEOUT_MS = 5000;

function dropSocket(ws) {
  if (ws !== state.ws) return;
  if (ws.readyState <= WebSocket.OPEN) ws.close();
  onSocketClosed(ws); // at once: the close handshake of a dead socket may hang
}

function watchSignalling(ws) {
  const timer = setInterval(() => {
    if (ws !== state.ws || ws.readyState !== WebSocket.OPEN) return clearInterval(timer);
    let answered = false;
    request({ type: "ping" }).then(
      () => (answered = true),
      (e) => (answered = e instanceof ServerError),
    );
    setTimeout(() => answered || dropSocket(ws), PING_TIMEOUT_MS);
  }, PING_MS);
}

export function send(msg) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(msg));
}

export function request(msg) {
  const id = ++state.ids;
  return new Promise((resolve, reject) => {
    state.pending.set(id, { resolve, reject });
    send({ ...msg, id });
  });
}

export class ServerError extends Error {
  constructor(reply) {
    super(reply.message);
    this.code = reply.code;
    this.reply = reply;
  }
}

function handle(msg) {
  if (msg.ref !== undefined && state.pending.has(msg.ref)) {
    const p = state.pending.get(msg.ref);
    state.pending.delete(msg.ref);
    if (msg.type === "error") p.reject(new ServerError(msg));
    else p.resolve(msg);
    if (msg.type !== "joined" && msg.type !== "lobby") return;
  }
  const handler = HANDLERS[msg.type];
  if (handler) handler(msg);
}

function onSocketClosed(ws) {
  if (ws !== state.ws) return;
  for (const p of state.pending.values()) p.reject(new Error("connection closed"));
  state.pending.clear();
  if (["ended", "prejoin", "reconnecting", "joining"].includes(state.phase) || state.leaving) return;
  reconnect();
}
