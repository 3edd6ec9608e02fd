"""Join-path speed-ups for aiortc 1.16 (issue 13): work that aiortc repeats for every
offer, or that a forwarding server never uses. Installed once by :mod:`.peer`.

- DTLS fingerprints: aiortc hashes its certificate with three digests for every m-line
  of every description it creates; the certificate never changes, so the result is
  kept on the certificate.
- SDP parsing: aiortc parses each description it is given (``setLocalDescription``,
  ``setRemoteDescription``); the SFU parses the same text to validate it and to read
  the negotiated tracks. :func:`preparsed` hands aiortc the description the SFU parsed
  already, and :func:`captured_parse` keeps the one aiortc parsed. Inside
  :func:`own_descriptions`, ``setLocalDescription`` of the text ``createOffer`` or
  ``createAnswer`` just made takes the description object they serialised instead of
  parsing it back (the round trip is lossless: tests/unit/test_aiortc_speedups.py).
- Receive-side bandwidth estimation: aiortc builds a ``RemoteBitrateEstimator`` for
  every video receiver. The server's receivers never see a packet through aiortc (the
  DTLS transport's RTP handler is replaced), so server-side ones get none; the SFU
  computes REMB itself.

Every private aiortc name used here is in :data:`PRIVATE_NAMES` (canary test).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any

import aiortc.rtcpeerconnection
import aiortc.rtcrtpreceiver
from aiortc import sdp as aiortc_sdp
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsFingerprint

__all__ = ["PRIVATE_NAMES", "captured_parse", "install", "own_descriptions", "preparsed"]

#: (object, attribute) pairs relied on here; the canary test checks each exists.
PRIVATE_NAMES: tuple[tuple[str, str], ...] = (
    ("aiortc.rtcrtpreceiver", "RemoteBitrateEstimator"),
    ("aiortc.rtcrtpreceiver.RTCRtpReceiver source", "self.__remote_bitrate_estimator is not None"),
    ("aiortc.rtcpeerconnection.RTCPeerConnection source", "sdp.SessionDescription.parse("),
    ("aiortc.rtcpeerconnection", "wrap_session_description"),
    ("aiortc.rtcpeerconnection.RTCPeerConnection source", "return wrap_session_description("),
    ("aiortc.rtcdtlstransport.RTCCertificate", "getFingerprints"),
    ("aiortc.rtcdtlstransport.RTCDtlsTransport source", "getFingerprints()"),
)

SessionDescription = aiortc_sdp.SessionDescription

_HANDOFF: contextvars.ContextVar[tuple[str, SessionDescription] | None] = contextvars.ContextVar(
    "sdp_handoff", default=None
)
_CAPTURE: contextvars.ContextVar[list[SessionDescription] | None] = contextvars.ContextVar(
    "sdp_capture", default=None
)
_OWN: contextvars.ContextVar[bool] = contextvars.ContextVar("sdp_own", default=False)
_installed = False


@contextlib.contextmanager
def preparsed(text: str, description: SessionDescription) -> Iterator[None]:
    """Inside, aiortc's parse of exactly ``text`` returns ``description`` (parsed from
    it already) instead of parsing again."""
    token = _HANDOFF.set((text, description))
    try:
        yield
    finally:
        _HANDOFF.reset(token)


@contextlib.contextmanager
def captured_parse() -> Iterator[list[SessionDescription]]:
    """Inside, the first description aiortc parses is appended to the yielded list."""
    found: list[SessionDescription] = []
    token = _CAPTURE.set(found)
    try:
        yield found
    finally:
        _CAPTURE.reset(token)


@contextlib.contextmanager
def own_descriptions() -> Iterator[None]:
    """Inside, a description serialised by aiortc (``createOffer``/``createAnswer``)
    becomes the hand-off for the next parse of its text (``setLocalDescription``)."""
    token, handoff = _OWN.set(True), _HANDOFF.set(_HANDOFF.get())
    try:
        yield
    finally:
        _HANDOFF.reset(handoff)
        _OWN.reset(token)


def install(server_side: Callable[[], bool]) -> None:
    """Patch aiortc (idempotent). ``server_side()`` is true while the SFU's own peer
    connections create their receivers."""
    global _installed
    if _installed:
        return
    _installed = True
    original_parse = aiortc_sdp.SessionDescription.parse
    original_fingerprints = RTCCertificate.getFingerprints
    original_wrap = aiortc.rtcpeerconnection.wrap_session_description
    original_estimator = getattr(aiortc.rtcrtpreceiver, "RemoteBitrateEstimator")  # noqa: B009

    def parse(cls: type[SessionDescription], sdp: str) -> SessionDescription:
        handoff = _HANDOFF.get()
        if handoff is not None and (handoff[0] is sdp or handoff[0] == sdp):
            description = handoff[1]
            _HANDOFF.set(None)  # once: a later parse of the same text gets its own
        else:
            description = original_parse(sdp)
        found = _CAPTURE.get()
        if found is not None and not found:
            found.append(description)
        return description

    def wrap(description: SessionDescription | None) -> Any:
        wrapped = original_wrap(description)
        if _OWN.get() and description is not None and wrapped is not None:
            _HANDOFF.set((wrapped.sdp, description))
        return wrapped

    def get_fingerprints(self: RTCCertificate) -> list[RTCDtlsFingerprint]:
        cached: list[RTCDtlsFingerprint] | None = self.__dict__.get("_mediaserver_fingerprints")
        if cached is None:
            cached = original_fingerprints(self)
            self.__dict__["_mediaserver_fingerprints"] = cached
        return [RTCDtlsFingerprint(algorithm=f.algorithm, value=f.value) for f in cached]

    def estimator() -> Any:
        return None if server_side() else original_estimator()

    setattr(aiortc_sdp.SessionDescription, "parse", classmethod(parse))  # noqa: B010
    setattr(aiortc.rtcpeerconnection, "wrap_session_description", wrap)  # noqa: B010
    setattr(RTCCertificate, "getFingerprints", get_fingerprints)  # noqa: B010
    setattr(aiortc.rtcrtpreceiver, "RemoteBitrateEstimator", estimator)  # noqa: B010
