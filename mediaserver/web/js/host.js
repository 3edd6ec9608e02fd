// Hosts: the waiting room's guests (admit / refuse) and the host control buttons.

import { $, state } from "./state.js";
import { send } from "./signalling.js";

// More waiting guests than this: one compact "N people waiting" bar instead of pop-ups.
const COMPACT_KNOCKS_AFTER = 3;

export function addKnock(knock) {
  if (state.knocks.has(knock.id)) return;
  state.knocks.set(knock.id, knock);
  state.lobbyWaiting = Math.max(state.lobbyWaiting + 1, state.knocks.size);
  renderKnocks();
}

export function removeKnock(id) {
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

// The host panel's buttons (the panel shows for hosts only).
export function setupHostControls() {
  $("mute-all").addEventListener("click", () => send({ type: "mute_all", kind: "audio", lock: false }));
  $("cameras-off").addEventListener("click", () => send({ type: "mute_all", kind: "video", lock: false }));
  $("lock-room").addEventListener("click", () => send({ type: "lock_room", locked: !state.locked }));
  $("admit-all").addEventListener("click", () => send({ type: "admit_all" }));
  $("end-meeting").addEventListener("click", () => {
    if (confirm("End the meeting for everyone?")) send({ type: "end_meeting" });
  });
}
