// The meeting's own controls: microphone, camera, screen share, copy link, leave.

import { $, state } from "./state.js";
import { toast } from "./screens.js";
import { request } from "./signalling.js";
import { leave } from "./session.js";
import { updateTileBadges } from "./tiles.js";
import { startScreenShare, stopScreenShare } from "./screenshare.js";

export function setLocalMuted(kind, muted, tellServer) {
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

export function setupMeetingControls() {
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
  $("message-retry").addEventListener("click", () => location.reload());
}
