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
- Subscribe answers: between two answers of one subscriber connection most m-sections
  are unchanged (a renegotiation adds one participant's m-lines to a room's worth).
  Inside :func:`reused_sections` (one :class:`SectionCache` per connection), aiortc's
  parse takes each m-section it parsed in the previous answer, same session part and
  same text, from that answer instead of parsing it again (an object that was changed
  since, by a trickled candidate, is parsed again).
- Codec negotiation: aiortc's ``find_common_codecs`` deep-copies every codec of every
  m-line it negotiates (``copy.deepcopy``: most of ``setRemoteDescription`` for 48
  m-lines); the same function with a field-by-field copy gives equal results.
- Addresses in SDP: aiortc parses the address of every m-line's ``c=`` line with
  :mod:`ipaddress` each time it serialises a description, to tell IPv4 from IPv6;
  the answer is remembered per address.
- Receive-side bandwidth estimation: aiortc builds a ``RemoteBitrateEstimator`` for
  every video receiver. The server's receivers never see a packet through aiortc (the
  DTLS transport's RTP handler is replaced), so server-side ones get none; the SFU
  computes REMB itself.

Every private aiortc name used here is in :data:`PRIVATE_NAMES` (canary test).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator
from typing import Any

import aiortc.rtcpeerconnection
import aiortc.rtcrtpreceiver
from aiortc import rtp as aiortc_rtp
from aiortc import sdp as aiortc_sdp
from aiortc.codecs import is_rtx
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsFingerprint
from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpCodecParameters

__all__ = [
    "ORIGINALS",
    "PRIVATE_NAMES",
    "SectionCache",
    "captured_parse",
    "find_common_codecs",
    "install",
    "own_descriptions",
    "preparsed",
    "reused_sections",
]

#: (object, attribute) pairs relied on here; the canary test checks each exists.
PRIVATE_NAMES: tuple[tuple[str, str], ...] = (
    ("aiortc.rtcrtpreceiver", "RemoteBitrateEstimator"),
    ("aiortc.rtcrtpreceiver.RTCRtpReceiver source", "self.__remote_bitrate_estimator is not None"),
    ("aiortc.rtcpeerconnection.RTCPeerConnection source", "sdp.SessionDescription.parse("),
    ("aiortc.rtcpeerconnection", "wrap_session_description"),
    ("aiortc.rtcpeerconnection.RTCPeerConnection source", "return wrap_session_description("),
    ("aiortc.rtcdtlstransport.RTCCertificate", "getFingerprints"),
    ("aiortc.rtcdtlstransport.RTCDtlsTransport source", "getFingerprints()"),
    ("aiortc.sdp", "grouplines"),
    ("aiortc.sdp", "ipaddress_to_sdp"),
    ("aiortc.sdp.MediaDescription source", "ipaddress_to_sdp(self.host)"),
    ("aiortc.rtcpeerconnection", "find_common_codecs"),
    ("aiortc.rtcpeerconnection", "is_codec_compatible"),
    ("aiortc.codecs", "is_rtx"),
    ("aiortc.rtcpeerconnection.RTCPeerConnection source", "find_common_codecs(CODECS["),
)

SessionDescription = aiortc_sdp.SessionDescription

_HANDOFF: contextvars.ContextVar[tuple[str, SessionDescription] | None] = contextvars.ContextVar(
    "sdp_handoff", default=None
)
_CAPTURE: contextvars.ContextVar[list[SessionDescription] | None] = contextvars.ContextVar(
    "sdp_capture", default=None
)
_SECTIONS: contextvars.ContextVar[SectionCache | None] = contextvars.ContextVar(
    "sdp_sections", default=None
)
_OWN: contextvars.ContextVar[bool] = contextvars.ContextVar("sdp_own", default=False)
_installed = False
#: aiortc's own functions, as they were before :func:`install` (tests compare).
ORIGINALS: dict[str, Callable[..., Any]] = {
    "parse": aiortc_sdp.SessionDescription.parse,
    "find_common_codecs": aiortc.rtcpeerconnection.find_common_codecs,
}


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


class SectionCache:
    """The m-sections of one connection's last parsed answer, by their text (with the
    session lines their parse depends on)."""

    def __init__(self) -> None:
        self._session = ""
        #: section text -> (media, its candidate count and end flag when parsed)
        self._entries: dict[str, tuple[aiortc_sdp.MediaDescription, int, bool]] = {}

    def parse(self, sdp: str, parse: Callable[[str], SessionDescription]) -> SessionDescription:
        """``parse(sdp)``, reusing the m-sections parsed last time (aiortc parses each
        m-section under the session part only: its result depends on nothing else)."""
        session_lines, groups = aiortc_sdp.grouplines(sdp)
        session_text = "\r\n".join(session_lines) + "\r\n"
        # What an m-section's parse reads of the session part (all but the origin and
        # the groups, which change with every answer and only fill the session's fields).
        context = "\r\n".join(
            line for line in session_lines if not line.startswith(("o=", "a=group:"))
        )
        if context != self._session:
            self._session, self._entries = context, {}
        description = parse(session_text)
        previous, entries = self._entries, {}
        self._entries = {}  # until this parse succeeds
        for lines in groups:
            key = "\r\n".join(lines)
            hit = previous.pop(key, None)
            if hit is not None and (
                len(hit[0].ice_candidates) != hit[1] or hit[0].ice_candidates_complete != hit[2]
            ):
                hit = None  # changed since (addIceCandidate appends to the remote one)
            if hit is None or key in entries:
                media = parse(session_text + key + "\r\n").media[0]
                hit = (media, len(media.ice_candidates), media.ice_candidates_complete)
            entries[key] = hit
            description.media.append(hit[0])
        self._entries = entries
        return description


@contextlib.contextmanager
def reused_sections(cache: SectionCache) -> Iterator[None]:
    """Inside, aiortc's parse goes through ``cache`` (see :class:`SectionCache`)."""
    token = _SECTIONS.set(cache)
    try:
        yield
    finally:
        _SECTIONS.reset(token)


def _copy_codec(codec: RTCRtpCodecParameters) -> RTCRtpCodecParameters:
    """``copy.deepcopy(codec)`` for what it holds (str/int fields, a list of feedback
    entries of str fields, a dict of str/int parameters)."""
    return RTCRtpCodecParameters(
        mimeType=codec.mimeType,
        clockRate=codec.clockRate,
        channels=codec.channels,
        payloadType=codec.payloadType,
        rtcpFeedback=[
            RTCRtcpFeedback(type=f.type, parameter=f.parameter) for f in codec.rtcpFeedback
        ],
        parameters=dict(codec.parameters),
    )


def find_common_codecs(
    local_codecs: list[RTCRtpCodecParameters], remote_codecs: list[RTCRtpCodecParameters]
) -> list[RTCRtpCodecParameters]:
    """aiortc 1.16's ``find_common_codecs`` with :func:`_copy_codec` for ``deepcopy``."""
    compatible = aiortc.rtcpeerconnection.is_codec_compatible
    common = []
    common_base: dict[int | None, RTCRtpCodecParameters] = {}
    for c in remote_codecs:
        if is_rtx(c):  # for RTX, check we accepted the base codec
            apt = c.parameters.get("apt")
            if isinstance(apt, int) and apt in common_base:
                base = common_base[apt]
                if c.clockRate == base.clockRate:
                    common.append(_copy_codec(c))
            continue
        for local in local_codecs:
            if compatible(local, c):
                codec = _copy_codec(local)
                if c.payloadType in aiortc_rtp.DYNAMIC_PAYLOAD_TYPES:
                    codec.payloadType = c.payloadType
                codec.rtcpFeedback = [x for x in codec.rtcpFeedback if x in c.rtcpFeedback]
                common.append(codec)
                common_base[codec.payloadType] = codec
                break
    return common


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
            sections = _SECTIONS.get()
            if sections is not None:
                _SECTIONS.set(None)  # once, and not for its own parses
                description = sections.parse(sdp, original_parse)
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
    setattr(aiortc.rtcpeerconnection, "find_common_codecs", find_common_codecs)  # noqa: B010
    to_sdp = functools.lru_cache(maxsize=1024)(aiortc_sdp.ipaddress_to_sdp)
    setattr(aiortc_sdp, "ipaddress_to_sdp", to_sdp)  # noqa: B010
    setattr(aiortc.rtcrtpreceiver, "RemoteBitrateEstimator", estimator)  # noqa: B010
