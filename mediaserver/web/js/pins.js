// Pinning (docs/protocol.md §16, `pin`).

import { toast } from "./screens.js";
import { request } from "./signalling.js";
import { nameOf } from "./tiles.js";

// With last-N (rooms.last_n) the server forwards camera video only from the most recent
// speakers; a pinned participant's camera keeps coming to this page (docs/protocol.md
// §16, `pin`). The server answers each pin with all of ours, which the tiles then show.
const pins = new Set();

export function pinButton(id) {
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
export function restorePins(participants) {
  const again = [...pins].filter((id) => participants.some((p) => p.id === id));
  pins.clear();
  for (const id of again) setPinned(id, true);
}
