from __future__ import annotations

import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
from aiortc.codecs import CODECS

from mediaserver.sfu.guard import install_codec_guard, uninstall_codec_guard
from mediaserver.telemetry import Metrics


def test_guard_counts_codec_creation():
    metrics = Metrics()
    install_codec_guard(metrics)
    try:
        vp8 = next(c for c in CODECS["video"] if c.mimeType == "video/VP8")
        aiortc.rtcrtpreceiver.get_decoder(vp8)
        aiortc.rtcrtpsender.get_encoder(vp8)
        assert metrics.codec_instances.labels("decoder")._value.get() == 1
        assert metrics.codec_instances.labels("encoder")._value.get() == 1
    finally:
        uninstall_codec_guard()
    assert aiortc.rtcrtpreceiver.get_decoder.__module__ == "aiortc.codecs"
