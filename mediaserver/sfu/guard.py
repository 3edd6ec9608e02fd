"""Counts every encoder/decoder aiortc creates in this process.

The SFU forwards RTP as bytes, so on a server process these counts must stay at zero.
``mediaserver serve`` installs the guard; ``mediaserver_codec_instances_total`` exposes
it and every creation is logged as an error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender

from ..telemetry import Metrics, get_logger

__all__ = ["install_codec_guard"]

_installed: dict[str, Callable[..., Any]] = {}


def install_codec_guard(metrics: Metrics) -> None:
    """Wrap aiortc's codec factories (as looked up by its sender and receiver)."""
    if _installed:
        return
    log = get_logger()
    orig_decoder = getattr(aiortc.rtcrtpreceiver, "get_decoder")  # noqa: B009
    orig_encoder = getattr(aiortc.rtcrtpsender, "get_encoder")  # noqa: B009

    def get_decoder(codec: Any) -> Any:
        metrics.codec_instances.labels("decoder").inc()
        log.error("a decoder was created on the server", codec=getattr(codec, "mimeType", "?"))
        return orig_decoder(codec)

    def get_encoder(codec: Any) -> Any:
        metrics.codec_instances.labels("encoder").inc()
        log.error("an encoder was created on the server", codec=getattr(codec, "mimeType", "?"))
        return orig_encoder(codec)

    setattr(aiortc.rtcrtpreceiver, "get_decoder", get_decoder)  # noqa: B010
    setattr(aiortc.rtcrtpsender, "get_encoder", get_encoder)  # noqa: B010
    _installed["decoder"] = orig_decoder
    _installed["encoder"] = orig_encoder
    metrics.codec_instances.labels("decoder").inc(0)
    metrics.codec_instances.labels("encoder").inc(0)


def uninstall_codec_guard() -> None:
    if not _installed:
        return
    setattr(aiortc.rtcrtpreceiver, "get_decoder", _installed.pop("decoder"))  # noqa: B010
    setattr(aiortc.rtcrtpsender, "get_encoder", _installed.pop("encoder"))  # noqa: B010
