// The join page: pre-join, waiting room, meeting, and clear messages for everything else.
// Speaks signalling protocol v1 (docs/protocol.md) over /ws. No build step.

import * as recording from "./recording.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const slug = (location.pathname.split("/j/")[1] || "").split("/")[0];
const token = params.get("token");
const invite = params.get("invite");

const state = {
  phase: "prejoin", // prejoin | joining | waiting | meeting | ended
  ws: null,
  ids: 0,
  pending: new Map(),
  localStream: null,
  audioOnly: false,
  listenOnly: false,
  publisher: null,
  subscriber: null,
  subQueue: Promise.resolve(),
  me: null, // {id, role, name}
  participants: new Map(), // id -> {id, name, role}
  myPublications: [], // [{id, kind, mid}]
  tracks: {}, // subscriber mid -> {publication_id, participant_id, kind}
  mutedPublications: new Set(),
  micMuted: false,
  camOff: false,
  locked: false,
  activeSpeaker: null,
  speaking: {},
  shareUrl: token || invite ? location.origin + "/j/" + slug : null,
  joinMessage: null,
  reconnects: 0,
  leaving: false,
  previewReady: Promise.resolve(),
  key: null, // this meeting's participant key
  knocks: new Map(), // knock id -> {id, name, waiting_seconds}
  lobbyWaiting: 0, // how many wait (the server may list only the oldest)
  showKnockList: false,
  media: { publisher: "idle", subscriber: "idle" }, // idle | connecting | connected | lost
  mediaEverConnected: false,
  mediaRestarts: 0,
};
// More waiting guests than this: one compact "N people waiting" bar instead of pop-ups.
const COMPACT_KNOCKS_AFTER = 3;

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
function keepKey(key) {
  if (typeof key !== "string") return;
  try {
    localStorage.setItem(KEY_ITEM, key);
  } catch (e) {
    // storage disabled: the key lives as long as this page
  }
  state.key = key;
}
window.meeting = state; // inspected by the end-to-end tests

// ---------------------------------------------------------------- screens

function show(screen) {
  for (const s of document.querySelectorAll(".screen")) s.hidden = s.id !== `screen-${screen}`;
}

function status(text) {
  $("status-line").textContent = text || "";
}

function toast(text) {
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

const MESSAGES = {
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

function message(code, details = {}) {
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

// ---------------------------------------------------------------- signalling

function connect() {
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

function send(msg) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(msg));
}

function request(msg) {
  const id = ++state.ids;
  return new Promise((resolve, reject) => {
    state.pending.set(id, { resolve, reject });
    send({ ...msg, id });
  });
}

class ServerError extends Error {
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

const HANDLERS = {
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

function onSocketClosed(ws) {
  if (ws !== state.ws) return;
  for (const p of state.pending.values()) p.reject(new Error("connection closed"));
  state.pending.clear();
  if (["ended", "prejoin", "reconnecting", "joining"].includes(state.phase) || state.leaving) return;
  reconnect();
}

async function reconnect() {
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

// ---------------------------------------------------------------- pre-join

async function startPreview(cameraId, micId) {
  stopMedia();
  const note = $("media-note");
  note.hidden = true;
  const audio = micId ? { deviceId: { exact: micId } } : true;
  const video = cameraId ? { deviceId: { exact: cameraId } } : { width: 1280, height: 720 };
  state.audioOnly = state.listenOnly = false;
  try {
    state.localStream = await navigator.mediaDevices.getUserMedia({ audio, video });
  } catch (e) {
    try {
      state.localStream = await navigator.mediaDevices.getUserMedia({ audio });
      state.audioOnly = true;
      note.textContent = "No camera available (or permission refused): you will join with audio only.";
      note.hidden = false;
    } catch (e2) {
      state.localStream = null;
      state.listenOnly = true;
      note.textContent = "No microphone or camera available (or permission refused): you will join listen-only.";
      note.hidden = false;
    }
  }
  $("preview").srcObject = state.localStream;
  await fillDevices();
}

async function fillDevices() {
  let devices = [];
  try {
    devices = await navigator.mediaDevices.enumerateDevices();
  } catch (e) {
    /* no devices */
  }
  for (const [kind, select] of [["videoinput", $("camera-select")], ["audioinput", $("mic-select")]]) {
    const current = select.value;
    select.replaceChildren();
    const list = devices.filter((d) => d.kind === kind);
    if (!list.length) {
      select.append(new Option("None available", ""));
      select.disabled = true;
      continue;
    }
    select.disabled = false;
    list.forEach((d, i) => select.append(new Option(d.label || `${kind === "videoinput" ? "Camera" : "Microphone"} ${i + 1}`, d.deviceId)));
    if (current) select.value = current;
  }
}

function tokenName() {
  try {
    const payload = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return payload.name;
  } catch (e) {
    return null;
  }
}

function setupPrejoin() {
  show("prejoin");
  if (token || invite) {
    $("name-row").hidden = true;
    const line = $("identity-line");
    line.textContent = token ? `You will join as ${tokenName() || "yourself"}.` : "You will join as Guest.";
    line.hidden = false;
  } else {
    $("name-input").value = localStorage.getItem("mediaserver.name") || "";
  }
  const restart = () => {
    state.previewReady = startPreview($("camera-select").value, $("mic-select").value);
  };
  $("camera-select").addEventListener("change", restart);
  $("mic-select").addEventListener("change", restart);
  $("join-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const name = $("name-input").value.trim();
    const err = $("name-error");
    err.hidden = true;
    if (!token && !invite && !name) {
      err.textContent = "Please enter your name.";
      err.hidden = false;
      $("name-input").focus();
      return;
    }
    if (name) localStorage.setItem("mediaserver.name", name);
    state.joinMessage = { type: "join", link: slug };
    if (token) state.joinMessage.token = token;
    else if (invite) state.joinMessage.invite = invite;
    else state.joinMessage.name = name;
    $("join-button").disabled = true;
    status("Joining…");
    try {
      await connect();
      await join();
    } catch (e) {
      $("join-button").disabled = false;
      if (e instanceof ServerError) {
        if (e.code === "invalid_field" && /name/.test(e.message)) {
          err.textContent = "That name cannot be used. Please use letters, digits and spaces.";
          err.hidden = false;
          status("");
        } else message(e.code, e.reply);
      } else message("connection_failed");
    }
  });
  state.previewReady = startPreview();
}

async function join() {
  state.phase = "joining";
  const key = state.key || storedKey();
  const reply = await request(key ? { ...state.joinMessage, key } : state.joinMessage);
  return reply; // "joined" and "lobby" are also handled by HANDLERS
}

// ---------------------------------------------------------------- meeting

async function enterMeeting(m) {
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

function stopMedia() {
  if (state.localStream) for (const t of state.localStream.getTracks()) t.stop();
  state.localStream = null;
  closePeers();
}

function closePeers() {
  for (const pc of [state.publisher, state.subscriber]) if (pc) pc.close();
  state.publisher = state.subscriber = null;
  state.subQueue = Promise.resolve();
  state.media = { publisher: "idle", subscriber: "idle" };
}

function iceGathered(pc) {
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

async function publish() {
  await state.previewReady; // the camera/microphone may still be starting
  if (!state.localStream || !state.localStream.getTracks().length) return;
  const reply = await offerPublisher(false);
  state.myPublications = reply.publications;
  const tile = ensureTile(state.me.id, true);
  const videoTracks = state.localStream.getVideoTracks();
  tile.querySelector("video").srcObject = new MediaStream(videoTracks);
  tile.classList.toggle("has-video", videoTracks.length > 0);
  if (state.micMuted) setLocalMuted("audio", true, true);
  if (state.camOff) setLocalMuted("video", true, true);
}

// ---------------------------------------------------------------- media recovery

function newPeer(which) {
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

async function offerPublisher(restart) {
  const pc = newPeer("publisher");
  const old = state.publisher;
  state.publisher = pc;
  for (const track of state.localStream.getTracks()) pc.addTransceiver(track, publishInit(track));
  if (state.screenTrack) state.screenTransceiver = pc.addTransceiver(state.screenTrack, { direction: "sendonly" });
  await pc.setLocalDescription(await pc.createOffer());
  await iceGathered(pc);
  const reply = await request({ type: "publish", sdp: pc.localDescription.sdp, ...(restart ? { restart: true } : {}), ...screenSources() });
  await pc.setRemoteDescription({ type: "answer", sdp: reply.sdp });
  if (old && old !== pc) old.close();
  return reply;
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

const TILE_STATE_TEXT = { connecting: "Connecting…", lost: "Connection lost, retrying…" };

function renderTileStates() {
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

function mediaProblem() {
  if (state.phase !== "meeting" || state.mediaEverConnected) return;
  if (!state.publisher && !state.subscriber) return; // nothing to connect (yet)
  const relay = state.iceServers.some((s) => [].concat(s.urls).some((u) => /^turns?:/.test(u)));
  const box = $("media-problem");
  box.textContent = relay
    ? "Your audio and video cannot connect. Your network probably blocks UDP and the TURN relay could not be reached either. Try another network, or ask your IT team to allow the meeting's TURN server (TCP 443)."
    : "Your audio and video cannot connect. Your network probably blocks UDP, and this server has no TURN relay configured. Try another network, or ask the meeting's organiser to set up TURN.";
  box.hidden = false;
}

async function onSubscribeOffer(m) {
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

function detachMid(mid, info) {
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

function nameOf(id) {
  if (state.me && id === state.me.id) return "You";
  return state.participants.get(id)?.name || "Someone";
}

function ensureTile(id, self = false) {
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

function removeTile(id) {
  document.querySelector(`.tile[data-participant="${id}"]`)?.remove();
  document.querySelector(`.tile.screen[data-owner="${id}"]`)?.remove();
  layoutStage();
  layoutGrid();
}

function layoutGrid() {
  if ($("grid").classList.contains("has-stage")) {
    $("grid").style.setProperty("--cols", "6"); // under a screen share: a strip
    return;
  }
  const n = $("grid").children.length;
  const cols = Math.ceil(Math.sqrt(n));
  $("grid").style.setProperty("--cols", String(cols));
}

function updateTileBadges() {
  for (const tile of document.querySelectorAll(".tile")) {
    const audioPub = tile.dataset.audio;
    const muted = tile.classList.contains("self") ? state.micMuted : audioPub && state.mutedPublications.has(audioPub);
    tile.querySelector(".badge").hidden = !muted;
    const videoPub = tile.dataset.video;
    const videoEl = tile.querySelector("video");
    if (videoPub) tile.classList.toggle("has-video", !state.mutedPublications.has(videoPub) && videoEl.videoWidth > 0);
  }
}

function renderPeople() {
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

function renderSpeaking() {
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

function setLocalMuted(kind, muted, tellServer) {
  if (state.localStream) {
    for (const t of kind === "audio" ? state.localStream.getAudioTracks() : state.localStream.getVideoTracks()) t.enabled = !muted;
  }
  if (kind === "audio") {
    state.micMuted = muted;
    $("toggle-mic").textContent = muted ? "Unmute" : "Mute";
  } else {
    state.camOff = muted;
    const self = document.querySelector(".tile.self");
    if (self && state.localStream?.getVideoTracks().length) self.classList.toggle("has-video", !muted);
    $("toggle-cam").textContent = muted ? "Start camera" : "Stop camera";
  }
  updateTileBadges();
  if (tellServer) {
    const pub = state.myPublications.find((p) => p.kind === kind && p.source !== "screen");
    if (pub) {
      request({ type: "mute", publication_id: pub.id, muted }).catch((e) => {
        if (e.code === "locked_by_host") {
          toast("A host has locked this. You cannot turn it back on.");
          setLocalMuted(kind, true, false);
        }
      });
    }
  }
}

function addKnock(knock) {
  if (state.knocks.has(knock.id)) return;
  state.knocks.set(knock.id, knock);
  state.lobbyWaiting = Math.max(state.lobbyWaiting + 1, state.knocks.size);
  renderKnocks();
}

function removeKnock(id) {
  if (state.knocks.delete(id) || state.lobbyWaiting > state.knocks.size) {
    state.lobbyWaiting = Math.max(state.lobbyWaiting - 1, state.knocks.size);
  }
  renderKnocks();
}

function button(text, onClick, className = "") {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  if (className) b.className = className;
  b.addEventListener("click", onClick);
  return b;
}

// A pop-up per waiting guest while a few wait; past COMPACT_KNOCKS_AFTER, one bar with
// the count, "Admit all" and "Show list" (the list then scrolls).
function renderKnocks() {
  const box = $("knocks");
  const waiting = Math.max(state.lobbyWaiting, state.knocks.size);
  if (waiting === 0) state.showKnockList = false;
  const compact = waiting > COMPACT_KNOCKS_AFTER;
  box.classList.toggle("listing", compact && state.showKnockList);
  const items = [];
  if (compact) {
    const bar = document.createElement("div");
    bar.className = "knock card";
    bar.id = "knock-summary";
    bar.setAttribute("role", "alertdialog");
    bar.setAttribute("aria-label", `${waiting} people waiting`);
    const text = document.createElement("p");
    text.textContent = `${waiting} people waiting`;
    bar.append(
      text,
      button("Admit all", () => send({ type: "admit_all" }), "primary"),
      button(state.showKnockList ? "Hide list" : "Show list", () => {
        state.showKnockList = !state.showKnockList;
        renderKnocks();
      }),
    );
    items.push(bar);
  }
  if (!compact || state.showKnockList) {
    for (const knock of state.knocks.values()) {
      const card = document.createElement("div");
      card.className = "knock card";
      card.id = `knock-${knock.id}`;
      card.setAttribute("role", compact ? "group" : "alertdialog");
      card.setAttribute("aria-label", `${knock.name} wants to join`);
      const text = document.createElement("p");
      text.textContent = `${knock.name} wants to join`;
      card.append(
        text,
        button("Admit", () => send({ type: "admit", knock_id: knock.id }), "primary"),
        button("Refuse", () => send({ type: "refuse", knock_id: knock.id })),
      );
      items.push(card);
    }
  }
  box.replaceChildren(...items);
}

function setupMeetingControls() {
  $("toggle-mic").addEventListener("click", () => setLocalMuted("audio", !state.micMuted, true));
  $("toggle-cam").addEventListener("click", () => setLocalMuted("video", !state.camOff, true));
  $("copy-link").addEventListener("click", async () => {
    if (!state.shareUrl) {
      toast("No shareable link for this meeting.");
      return;
    }
    try {
      await navigator.clipboard.writeText(state.shareUrl);
      toast("Meeting link copied.");
    } catch (e) {
      toast(state.shareUrl);
    }
  });
  $("leave").addEventListener("click", leave);
  $("share-screen").addEventListener("click", () => (state.screenTrack ? stopScreenShare(true) : startScreenShare()));
  $("waiting-leave").addEventListener("click", leave);
  $("mute-all").addEventListener("click", () => send({ type: "mute_all", kind: "audio", lock: false }));
  $("cameras-off").addEventListener("click", () => send({ type: "mute_all", kind: "video", lock: false }));
  $("lock-room").addEventListener("click", () => send({ type: "lock_room", locked: !state.locked }));
  $("admit-all").addEventListener("click", () => send({ type: "admit_all" }));
  $("end-meeting").addEventListener("click", () => {
    if (confirm("End the meeting for everyone?")) send({ type: "end_meeting" });
  });
  $("message-retry").addEventListener("click", () => location.reload());
}

function leave() {
  state.leaving = true;
  send({ type: "leave" });
  message("left");
  setTimeout(() => state.ws?.close(), 200);
}

// ---------------------------------------------------------------- start

if (!slug) {
  message("link_not_found");
} else {
  setupMeetingControls();
  recording.setupButton(send);
  setupPrejoin();
  recording.loadNotice(slug);
}

// ---------------------------------------------------------------- simulcast

// Camera video goes out as three simulcast layers (quarter, half and full size) unless
// the server turned that off (rtc.simulcast_publish); the server forwards each viewer
// the layer its tile needs.
function publishInit(track) {
  if (track.kind !== "video" || !state.simulcast) return { direction: "sendonly" };
  return {
    direction: "sendonly",
    sendEncodings: [
      { rid: "q", scaleResolutionDownBy: 4, maxBitrate: 150000 },
      { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 500000 },
      { rid: "f", scaleResolutionDownBy: 1, maxBitrate: 1500000 },
    ],
  };
}

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

function watchTileSize(tile) {
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

// ---------------------------------------------------------------- screen sharing

// A screen share is a second video publication (source "screen") on the publisher
// connection. Publications are never removed: stopping mutes it (and the track is
// taken off the sender); sharing again puts a new track on the same transceiver.
function screenSources() {
  const mid = state.screenTransceiver?.mid;
  return mid != null && state.screenTrack ? { sources: { [mid]: "screen" } } : {};
}

async function startScreenShare() {
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

function stopScreenShare(tellServer) {
  const track = state.screenTrack;
  if (!track) return;
  state.screenTrack = null;
  track.stop();
  state.screenTransceiver?.sender.replaceTrack(null).catch(() => {});
  $("share-screen").textContent = "Share screen";
  const mine = state.myPublications.find((p) => p.source === "screen");
  if (tellServer && mine) send({ type: "mute", publication_id: mine.id, muted: true });
}

function ensureScreenTile(info) {
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

function showScreenTile(publicationId, visible) {
  const tile = [...document.querySelectorAll(".tile.screen")].find((t) => t.dataset.video === publicationId);
  if (!tile) return;
  tile.hidden = !visible;
  layoutStage();
}

// With a visible screen share the grid becomes a stage: the share spans the width,
// camera tiles form a strip of small tiles under it.
function layoutStage() {
  const staged = [...document.querySelectorAll(".tile.screen")].some((t) => !t.hidden);
  $("grid").classList.toggle("has-stage", staged);
  layoutGrid();
}

// ---------------------------------------------------------------- pinning

// With last-N (rooms.last_n) the server forwards camera video only from the most recent
// speakers; a pinned participant's camera keeps coming to this page (docs/protocol.md
// §16, `pin`). The server answers each pin with all of ours, which the tiles then show.
const pins = new Set();

function pinButton(id) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "pin";
  b.textContent = "Pin";
  b.setAttribute("aria-pressed", "false");
  b.setAttribute("aria-label", `Pin ${nameOf(id)}`);
  b.addEventListener("click", () => setPinned(id, !pins.has(id)));
  return b;
}

function setPinned(id, pinned) {
  request({ type: "pin", participant_id: id, pinned })
    .then((reply) => showPins(reply.participant_ids))
    .catch((e) => toast(e.code === "too_many_pins" ? "You have pinned as many people as you can. Unpin someone first." : "Pinning failed."));
}

function showPins(ids) {
  pins.clear();
  for (const id of ids) pins.add(id);
  for (const tile of document.querySelectorAll(".tile[data-participant]")) {
    const on = pins.has(tile.dataset.participant);
    tile.classList.toggle("pinned", on);
    const b = tile.querySelector(".pin");
    if (!b) continue;
    b.textContent = on ? "Unpin" : "Pin";
    b.setAttribute("aria-pressed", String(on));
    b.setAttribute("aria-label", `${on ? "Unpin" : "Pin"} ${nameOf(tile.dataset.participant)}`);
  }
}

// After a reconnect we are a new participant without pins: pin again whoever is still here.
function restorePins(participants) {
  const again = [...pins].filter((id) => participants.some((p) => p.id === id));
  pins.clear();
  for (const id of again) setPinned(id, true);
}
