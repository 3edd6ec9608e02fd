"""Pure SDP analysis for the SFU: what a publisher offers, what was negotiated.

Uses :mod:`aiortc.sdp` (the parser aiortc itself applies) so that what we accept is
exactly what the peer connection will accept. No IO, no peer connections.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiortc import sdp as aiortc_sdp

from .forwarder import EXT_ABS_SEND_TIME, EXT_AUDIO_LEVEL, EXT_MID
from .sdp_limits import SdpError

__all__ = [
    "SUPPORTED_CODECS",
    "NegotiatedTrack",
    "SdpError",
    "apply_announced_address",
    "checked_tracks",
    "negotiated_tracks",
    "parse_sdp",
    "same_codec",
]

#: Codecs the SFU forwards, by kind (what aiortc 1.16 can negotiate).
SUPPORTED_CODECS = {
    "audio": ("opus", "G722", "PCMU", "PCMA"),
    "video": ("VP8", "H264"),
}
MAX_SDP_BYTES = 60_000


@dataclass(frozen=True, slots=True)
class NegotiatedTrack:
    """One negotiated audio/video m-line."""

    mid: str
    kind: str
    direction: str
    codec: str  # e.g. "VP8", "opus"
    mime_type: str
    clock_rate: int
    channels: int | None
    payload_type: int
    codec_parameters: tuple[tuple[str, str], ...]
    rtx_payload_type: int
    ssrc: int  # 0 when the SDP carries no a=ssrc line
    rtx_ssrc: int
    mid_ext_id: int
    audio_level_ext_id: int
    abs_send_time_ext_id: int
    msid: str


def parse_sdp(
    text: object, expected_type: str, max_bytes: int = MAX_SDP_BYTES
) -> aiortc_sdp.SessionDescription:
    """Parse and sanity-check an SDP; raise :class:`SdpError` with a precise reason.

    ``max_bytes``: a subscribe answer's bound grows with the offer it answers
    (:data:`.sdp_limits.ANSWER_BYTES_PER_MLINE`), like in ``check_sdp_bounds``."""
    if not isinstance(text, str) or not text.strip():
        raise SdpError("sdp must be a non-empty string")
    if len(text) > max_bytes:
        raise SdpError(f"sdp longer than {max_bytes} bytes")
    if not text.startswith("v=0"):
        raise SdpError("sdp must start with 'v=0'")
    try:
        desc = aiortc_sdp.SessionDescription.parse(text)
    except Exception as exc:  # aiortc raises ValueError, KeyError, IndexError...
        raise SdpError(f"unparseable sdp: {type(exc).__name__}: {exc}") from None
    desc.type = expected_type
    if not desc.media:
        raise SdpError("sdp has no media sections")
    for i, media in enumerate(desc.media):
        if media.kind not in ("audio", "video"):
            raise SdpError(f"m-line {i}: media kind {media.kind!r} is not supported")
        if media.rtp.muxId in (None, ""):
            raise SdpError(f"m-line {i}: missing a=mid")
        if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
            raise SdpError(f"m-line {i}: missing ICE credentials (a=ice-ufrag / a=ice-pwd)")
        if media.dtls is None or not media.dtls.fingerprints:
            raise SdpError(f"m-line {i}: missing DTLS fingerprint")
        if media.direction is None:
            raise SdpError(f"m-line {i}: missing direction")
    return desc


def _codec_name(mime: str) -> str:
    return mime.split("/", 1)[1] if "/" in mime else mime


def _ext_id(media: aiortc_sdp.MediaDescription, uri: str) -> int:
    for ext in media.rtp.headerExtensions:
        if ext.uri == uri:
            return int(ext.id)
    return 0


def negotiated_tracks(
    answer: aiortc_sdp.SessionDescription, ssrc_source: aiortc_sdp.SessionDescription
) -> list[NegotiatedTrack]:
    """The tracks of a completed negotiation.

    ``answer`` gives the codecs and extension ids in use; ``ssrc_source`` is the
    description of the side that sends (its a=ssrc lines give the SSRCs). m-lines
    whose answer has no usable codec are left out.
    """
    ssrcs_by_mid: dict[str, tuple[int, int, str]] = {}
    for media in ssrc_source.media:
        main = media.ssrc[0].ssrc if media.ssrc else 0
        rtx = 0
        for group in media.ssrc_group:
            if group.semantic == "FID" and len(group.items) == 2:
                main, rtx = int(group.items[0]), int(group.items[1])
        ssrcs_by_mid[str(media.rtp.muxId)] = (int(main), int(rtx), media.msid or "")
    tracks: list[NegotiatedTrack] = []
    for media in answer.media:
        if media.kind not in ("audio", "video") or media.port == 0:
            continue
        primary = None
        for codec in media.rtp.codecs:
            name = _codec_name(codec.mimeType)
            if name.lower() in ("rtx", "red", "ulpfec", "flexfec-03"):
                continue
            if name.lower() in (c.lower() for c in SUPPORTED_CODECS[media.kind]):
                primary = codec
                break
        if primary is None:
            continue
        rtx_pt = 0
        for codec in media.rtp.codecs:
            if _codec_name(codec.mimeType).lower() == "rtx" and str(
                codec.parameters.get("apt")
            ) == str(primary.payloadType):
                rtx_pt = int(codec.payloadType or 0)
        mid = str(media.rtp.muxId)
        ssrc, rtx_ssrc, msid = ssrcs_by_mid.get(mid, (0, 0, ""))
        tracks.append(
            NegotiatedTrack(
                mid=mid,
                kind=media.kind,
                direction=str(media.direction),
                codec=_codec_name(primary.mimeType),
                mime_type=primary.mimeType,
                clock_rate=int(primary.clockRate),
                channels=primary.channels,
                payload_type=int(primary.payloadType or 0),
                codec_parameters=tuple(
                    sorted((str(k), str(v)) for k, v in primary.parameters.items())
                ),
                rtx_payload_type=rtx_pt,
                ssrc=ssrc,
                rtx_ssrc=rtx_ssrc if rtx_pt else 0,
                mid_ext_id=_ext_id(media, EXT_MID),
                audio_level_ext_id=_ext_id(media, EXT_AUDIO_LEVEL),
                abs_send_time_ext_id=_ext_id(media, EXT_ABS_SEND_TIME),
                msid=msid,
            )
        )
    return tracks


def checked_tracks(
    answer: aiortc_sdp.SessionDescription, ssrc_source: aiortc_sdp.SessionDescription
) -> list[NegotiatedTrack]:
    """negotiated_tracks; a malformed value in the client's SDP is an SdpError."""
    try:
        return negotiated_tracks(answer, ssrc_source)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise SdpError(f"unusable sdp: {type(exc).__name__}: {exc}") from None


def same_codec(cap: Any, track: NegotiatedTrack) -> bool:
    """Whether codec capability ``cap`` is ``track``'s codec (H264: same packetization
    mode and profile)."""
    if cap.mimeType.lower() != track.mime_type.lower():
        return False
    if track.codec.upper() != "H264":
        return True
    want = dict(track.codec_parameters)
    have = {str(k): str(v) for k, v in cap.parameters.items()}
    return (
        have.get("packetization-mode", "0") == want.get("packetization-mode", "0")
        and have.get("profile-level-id", "")[:2] == want.get("profile-level-id", "")[:2]
    )


_CANDIDATE_RE = re.compile(
    r"^(a=candidate:\S+ \d+ \S+ \d+ )(\S+)( \d+ typ host)(.*)$", re.MULTILINE
)


def apply_announced_address(
    sdp_text: str, announced: str, mapping: Mapping[str, str] | None = None
) -> str:
    """Rewrite host candidates to the operator's announced address (1:1 NAT).

    ``mapping`` (local address → announced address, for multi-homed hosts) wins for the
    addresses it names; ``announced`` applies to the others. Each host candidate keeps
    its port; the connection (c=) lines are left alone since ICE only uses candidates.
    """
    if not announced and not mapping:
        return sdp_text
    table = {_normal(k): v for k, v in (mapping or {}).items()}

    def rewrite(m: re.Match[str]) -> str:
        public = table.get(_normal(m.group(2)), announced) or m.group(2)
        return f"{m.group(1)}{public}{m.group(3)}{m.group(4)}"

    return _CANDIDATE_RE.sub(rewrite, sdp_text)


def _normal(address: str) -> str:
    try:
        return ipaddress.ip_address(address).compressed
    except ValueError:
        return address
