// The join page: pre-join, waiting room, meeting, and clear messages for everything else.
// Speaks signalling protocol v1 (docs/protocol.md) over /ws. No build step: plain ES
// modules under js/, one concern each (docs/architecture.md, "Browser join page").

import * as recording from "./js/recording.js";
import { slug } from "./js/state.js";
import { message } from "./js/screens.js";
import { send } from "./js/signalling.js";
import { setupPrejoin } from "./js/prejoin.js";
import { setupMeetingControls } from "./js/controls.js";
import { setupHostControls } from "./js/host.js";

if (!slug) {
  message("link_not_found");
} else {
  setupMeetingControls();
  setupHostControls();
  recording.setupButton(send);
  setupPrejoin();
  recording.loadNotice(slug);
}
