from __future__ import annotations

import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import av
import codec_guard
from aiortc.codecs import CODECS


def test_guard_records_codec_creation(tmp_path):
    log = tmp_path / "codecs.log"
    created = codec_guard.install(str(log))
    try:
        vp8 = next(c for c in CODECS["video"] if c.mimeType == "video/VP8")
        aiortc.rtcrtpreceiver.get_decoder(vp8)
        aiortc.rtcrtpsender.get_encoder(vp8)
        aiortc_lines = [c for c in created if not c.startswith("pyav ")]
        assert aiortc_lines == ["decoder video/VP8", "encoder video/VP8"]
        # PyAV used directly (as the recorder must not: it only muxes)
        before = len(created)
        av.CodecContext.create("opus", "r")
        av.CodecContext.create("libvpx", "w")
        assert created[before:] == ["pyav opus r", "pyav libvpx w"]
        assert log.read_text().splitlines() == created
    finally:
        codec_guard.uninstall()
    assert aiortc.rtcrtpreceiver.get_decoder.__module__ == "aiortc.codecs"
    total = len(created)
    av.CodecContext.create("opus", "r")
    assert len(created) == total  # uninstalled: no longer recorded
