// Publishing the local camera and microphone (the publisher connection).

import { state } from "./state.js";
import { request } from "./signalling.js";
import { setLocalMuted } from "./controls.js";
import { iceGathered, newPeer } from "./peers.js";
import { ensureTile } from "./tiles.js";
import { screenSources } from "./screenshare.js";

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


export async function publish() {
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

export async function offerPublisher(restart) {
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
