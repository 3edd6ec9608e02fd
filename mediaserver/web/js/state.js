// Shared state of the join page: the link's slug, token and invite, and the one mutable
// state object every module reads and writes (exposed as window.meeting for the tests).

export const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
export const slug = (location.pathname.split("/j/")[1] || "").split("/")[0];
export const token = params.get("token");
export const invite = params.get("invite");

export const state = {
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
  // set on joining: from the joined message, and the media-problem timer
  simulcast: false,
  iceServers: [],
  mediaTimer: null,
  // while sharing the screen: its track and the publisher's transceiver for it
  screenTrack: null,
  screenTransceiver: null,
};

window.meeting = state; // inspected by the end-to-end tests
