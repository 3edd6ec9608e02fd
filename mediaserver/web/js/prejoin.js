// The pre-join screen: camera/microphone preview and choice, name, the join form.

import { $, slug, token, invite, state } from "./state.js";
import { show, status, message } from "./screens.js";
import { connect, ServerError } from "./signalling.js";
import { join } from "./session.js";
import { stopMedia } from "./peers.js";

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

export function setupPrejoin() {
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
