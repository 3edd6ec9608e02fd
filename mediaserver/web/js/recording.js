// Recording (docs/protocol.md §15): the persistent "Recording" indicator, the notice on
// the pre-join screen and in the waiting room, and the hosts' Start/Stop button.

const $ = (id) => document.getElementById(id);
const rec = { active: false, policy: "off", role: null };

// Before joining: the link's recording option, and whether its meeting records now.
export async function loadNotice(slug) {
  try {
    const r = await fetch(`/j/${encodeURIComponent(slug)}/recording`, { cache: "no-store" });
    if (!r.ok) return;
    const info = await r.json();
    rec.policy = info.policy;
    const el = $("recording-notice");
    if (info.active || info.policy === "always") {
      el.textContent = "This meeting is being recorded. Everyone in it is told.";
    } else if (info.policy === "host") {
      el.textContent = "A host may record this meeting; you will see when it is recorded.";
    } else {
      return;
    }
    el.hidden = false;
  } catch (e) {
    // best effort: the waiting room and the meeting say it again
  }
}

function setActive(active) {
  rec.active = active;
  $("recording-indicator").hidden = !active;
  $("waiting-recording").hidden = !active;
  const button = $("toggle-recording");
  button.hidden = rec.role !== "host" || rec.policy !== "host";
  button.textContent = active ? "Stop recording" : "Start recording";
}

export function onLobby(m) {
  if (typeof m.recording === "boolean") setActive(m.recording);
}

export function onJoined(m) {
  const r = m.recording || {};
  rec.policy = r.policy || "off";
  rec.role = m.role;
  setActive(!!r.active);
}

export function onRecording(m, toast) {
  setActive(!!m.active);
  if (m.active) toast("This meeting is now being recorded.");
  else if (m.reason === "disk_full") toast("Recording stopped: the server ran out of space.");
  else toast("Recording stopped.");
}

export function setupButton(send) {
  $("toggle-recording").addEventListener("click", () =>
    send({ type: "set_recording", active: !rec.active }),
  );
}
