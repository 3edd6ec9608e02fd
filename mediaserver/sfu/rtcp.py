"""Pure RTCP logic for the SFU: parsing and serialising (RFC 3550/4585/5104, REMB).
The per-stream bookkeeping (receive statistics, NACK generation, keyframe-request
throttle, REMB aggregation, the sender-report clock) is in :mod:`.rtcp_state`.

Nothing in this module does IO, touches asyncio or imports aiortc. Time is always
passed in explicitly (float seconds from a monotonic clock, except where a
wall-clock is named), so every function and class is deterministic.

References: RFC 3550 (RTP/RTCP), RFC 4585 (AVPF feedback: NACK, PLI), RFC 5104
(FIR), draft-alvestrand-rmcat-remb (REMB), RFC 4330 (NTP era handling).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

__all__ = [
    "FEEDBACK",
    "MAX_REPORT_BLOCKS",
    "RTCP_APP",
    "RTCP_BYE",
    "RTCP_PSFB",
    "RTCP_RR",
    "RTCP_RTPFB",
    "RTCP_SDES",
    "RTCP_SR",
    "Bye",
    "Fir",
    "Nack",
    "Other",
    "Pli",
    "ReceiverReport",
    "Remb",
    "ReportBlock",
    "RtcpItem",
    "SenderReport",
    "build_bye",
    "build_fir",
    "build_nack",
    "build_pli",
    "build_remb",
    "build_rr",
    "build_sdes_cname",
    "build_sr",
    "ntp_middle32",
    "ntp_now",
    "ntp_to_unix",
    "parse_rtcp",
]

# --------------------------------------------------------------------------- constants

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_APP = 204
RTCP_RTPFB = 205
RTCP_PSFB = 206

_FMT_NACK = 1  # RTPFB generic NACK (RFC 4585 6.2.1)
_FMT_PLI = 1  # PSFB picture loss indication (RFC 4585 6.3.1)
_FMT_FIR = 4  # PSFB full intra request (RFC 5104 4.3.1)
_FMT_AFB = 15  # PSFB application layer feedback (REMB lives here)

_SDES_CNAME = 1

#: RC/SC field is 5 bits wide.
MAX_REPORT_BLOCKS = 31

_NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
_TWO_32 = 1 << 32
_TWO_64 = 1 << 64
_MASK16 = 0xFFFF
_MASK32 = 0xFFFFFFFF
_MASK64 = 0xFFFFFFFFFFFFFFFF
_LOST_MIN = -(1 << 23)  # cumulative packets lost: a signed 24-bit field
_LOST_MAX = (1 << 23) - 1


_REMB_MANTISSA_MAX = (1 << 18) - 1
_REMB_EXP_MAX = (1 << 6) - 1

_HEADER = struct.Struct("!BBH")
_U32 = struct.Struct("!L")
_TWO_U32 = struct.Struct("!LL")
_SENDER_INFO = struct.Struct("!LQLLL")  # ssrc, ntp, rtp_ts, packet count, octet count
_REPORT_BLOCK = struct.Struct("!LLLLLL")  # ssrc, fraction|lost, highest, jitter, lsr, dlsr
_NACK_FCI = struct.Struct("!HH")
_FIR_FCI = struct.Struct("!LB3x")
_REMB_HEAD = struct.Struct("!4sBBH")

_REPORT_BLOCK_SIZE = _REPORT_BLOCK.size  # 24

# --------------------------------------------------------------------------- data model


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """One reception report block (RFC 3550 6.4.1)."""

    ssrc: int
    fraction_lost: int
    packets_lost: int  # signed 24-bit
    highest_seq: int  # extended highest sequence number received
    jitter: int  # interarrival jitter, RTP timestamp units
    lsr: int  # middle 32 bits of the last SR's NTP timestamp
    dlsr: int  # delay since last SR, 1/65536 s


@dataclass(frozen=True, slots=True)
class SenderReport:
    ssrc: int
    ntp: int  # 64-bit NTP timestamp
    rtp_ts: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    ssrc: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class Nack:
    """Generic NACK; ``lost`` is the expanded PID+BLP list (16-bit, wrap-aware)."""

    sender_ssrc: int
    media_ssrc: int
    lost: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Pli:
    sender_ssrc: int
    media_ssrc: int


@dataclass(frozen=True, slots=True)
class Fir:
    """Full intra request; ``entries`` are ``(media ssrc, command sequence number)``."""

    sender_ssrc: int
    entries: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class Remb:
    sender_ssrc: int
    bitrate: int  # bits per second
    ssrcs: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Bye:
    ssrcs: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Other:
    """Any RTCP packet this module does not interpret (SDES, APP, transport-cc, XR...)."""

    pt: int
    fmt: int  # the 5-bit RC/SC/FMT header field


RtcpItem: TypeAlias = SenderReport | ReceiverReport | Nack | Pli | Fir | Remb | Bye | Other

# --------------------------------------------------------------------------- parsing


def _parse_report_blocks(
    data: bytes, pos: int, end: int, count: int, what: str
) -> tuple[ReportBlock, ...]:
    if pos + count * _REPORT_BLOCK_SIZE > end:
        raise ValueError(f"RTCP {what}: {count} report blocks do not fit in packet")
    blocks: list[ReportBlock] = []
    for _ in range(count):
        ssrc, word, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(data, pos)
        lost = word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 1 << 24
        blocks.append(ReportBlock(ssrc, word >> 24, lost, highest, jitter, lsr, dlsr))
        pos += _REPORT_BLOCK_SIZE
    return tuple(blocks)


def _parse_one(data: bytes, pt: int, count: int, pos: int, end: int) -> RtcpItem:
    """Parse one RTCP packet whose payload (after the 4-byte header) is data[pos:end]."""
    size = end - pos
    if pt == RTCP_SR:
        if size < _SENDER_INFO.size:
            raise ValueError(f"RTCP SR: payload of {size} bytes is shorter than sender info")
        ssrc, ntp, rtp_ts, packets, octets = _SENDER_INFO.unpack_from(data, pos)
        blocks = _parse_report_blocks(data, pos + _SENDER_INFO.size, end, count, "SR")
        return SenderReport(ssrc, ntp, rtp_ts, packets, octets, blocks)
    if pt == RTCP_RR:
        if size < 4:
            raise ValueError(f"RTCP RR: payload of {size} bytes has no sender SSRC")
        (ssrc,) = _U32.unpack_from(data, pos)
        return ReceiverReport(ssrc, _parse_report_blocks(data, pos + 4, end, count, "RR"))
    if pt == RTCP_BYE:
        if size < 4 * count:
            raise ValueError(f"RTCP BYE: {count} SSRCs do not fit in {size} bytes")
        return Bye(struct.unpack_from(f"!{count}L", data, pos))
    if pt == RTCP_RTPFB and count == _FMT_NACK:
        if size < 8 or size % 4:
            raise ValueError(f"RTCP NACK: invalid payload length {size}")
        sender, media = _TWO_U32.unpack_from(data, pos)
        lost: list[int] = []
        for fci in range(pos + 8, end, 4):
            pid, blp = _NACK_FCI.unpack_from(data, fci)
            lost.append(pid)
            bit = 0
            while blp:
                if blp & 1:
                    lost.append((pid + bit + 1) & _MASK16)
                blp >>= 1
                bit += 1
        return Nack(sender, media, tuple(lost))
    if pt == RTCP_PSFB:
        if size < 8:
            raise ValueError(f"RTCP PSFB: payload of {size} bytes is too short")
        sender, media = _TWO_U32.unpack_from(data, pos)
        if count == _FMT_PLI:
            return Pli(sender, media)
        if count == _FMT_FIR:
            if (size - 8) % _FIR_FCI.size:
                raise ValueError(f"RTCP FIR: FCI length {size - 8} is not a multiple of 8")
            entries = tuple(
                _FIR_FCI.unpack_from(data, fci) for fci in range(pos + 8, end, _FIR_FCI.size)
            )
            return Fir(sender, entries)
        if count == _FMT_AFB and size >= 8 + _REMB_HEAD.size:
            magic, num, exp_hi, mant_lo = _REMB_HEAD.unpack_from(data, pos + 8)
            if magic == b"REMB":
                first = pos + 8 + _REMB_HEAD.size
                if first + 4 * num > end:
                    raise ValueError(f"RTCP REMB: {num} SSRCs do not fit in packet")
                mantissa = ((exp_hi & 0x03) << 16) | mant_lo
                bitrate = mantissa << (exp_hi >> 2)
                return Remb(sender, bitrate, struct.unpack_from(f"!{num}L", data, first))
    return Other(pt, count)


#: The packet types of transport and payload-specific feedback (NACK, PLI, FIR, REMB).
FEEDBACK = frozenset({RTCP_RTPFB, RTCP_PSFB})


def parse_rtcp(data: bytes, only: frozenset[int] | None = None) -> list[RtcpItem]:
    """Parse a (compound) RTCP datagram.

    Unknown packet types become :class:`Other`. ``only``: packet types to parse; the
    others are checked for framing and skipped (e.g. :data:`FEEDBACK`: a subscriber's
    receiver reports, which the SFU does not use, cost nothing). Raises
    :class:`ValueError` (and only that) for empty, truncated or malformed input.
    """
    n = len(data)
    if n == 0:
        raise ValueError("RTCP: empty datagram")
    items: list[RtcpItem] = []
    pos = 0
    try:
        while pos < n:
            if pos + 4 > n:
                raise ValueError(f"RTCP: {n - pos} trailing bytes at offset {pos}, need 4")
            first, pt, length = _HEADER.unpack_from(data, pos)
            if first >> 6 != 2:
                raise ValueError(f"RTCP: version {first >> 6} at offset {pos}, expected 2")
            start = pos + 4
            end = start + 4 * length
            if end > n:
                raise ValueError(
                    f"RTCP: packet at offset {pos} claims {4 * length} payload bytes, "
                    f"only {n - start} left"
                )
            payload_end = end
            if first & 0x20:  # padding: the last octet counts the padding octets
                pad = data[end - 1] if end > start else 0
                if pad == 0 or pad > end - start:
                    raise ValueError(f"RTCP: invalid padding length at offset {pos}")
                payload_end = end - pad
            if only is None or pt in only:
                items.append(_parse_one(data, pt, first & 0x1F, start, payload_end))
            pos = end
    except struct.error as exc:  # defensive: length checks above should prevent this
        raise ValueError(f"RTCP: malformed packet ({exc})") from exc
    return items


# --------------------------------------------------------------------------- building


def _packet(pt: int, count: int, payload: bytes) -> bytes:
    words = len(payload) // 4
    if len(payload) % 4:
        raise ValueError("RTCP payload must be 32-bit aligned")
    if words > 0xFFFF:
        raise ValueError(f"RTCP payload of {len(payload)} bytes exceeds the length field")
    return _HEADER.pack(0x80 | count, pt, words) + payload


def _pack_blocks(reports: Sequence[ReportBlock]) -> bytes:
    if len(reports) > MAX_REPORT_BLOCKS:
        raise ValueError(f"at most {MAX_REPORT_BLOCKS} report blocks, got {len(reports)}")
    out = bytearray()
    for r in reports:
        lost = min(max(r.packets_lost, _LOST_MIN), _LOST_MAX) & 0xFFFFFF
        out += _REPORT_BLOCK.pack(
            r.ssrc,
            ((r.fraction_lost & 0xFF) << 24) | lost,
            r.highest_seq,
            r.jitter,
            r.lsr,
            r.dlsr,
        )
    return bytes(out)


def build_rr(sender_ssrc: int, reports: Sequence[ReportBlock]) -> bytes:
    """Receiver report (PT 201); ``reports`` may be empty (RC=0), at most 31 blocks."""
    return _packet(RTCP_RR, len(reports), _U32.pack(sender_ssrc) + _pack_blocks(reports))


def build_sr(
    ssrc: int,
    ntp: int,
    rtp_ts: int,
    packet_count: int,
    octet_count: int,
    reports: Sequence[ReportBlock] = (),
) -> bytes:
    """Sender report (PT 200) with up to 31 report blocks."""
    head = _SENDER_INFO.pack(
        ssrc, ntp & _MASK64, rtp_ts & _MASK32, packet_count & _MASK32, octet_count & _MASK32
    )
    return _packet(RTCP_SR, len(reports), head + _pack_blocks(reports))


def build_sdes_cname(ssrc: int, cname: str) -> bytes:
    """SDES (PT 202) with one chunk holding a CNAME item."""
    raw = cname.encode("utf-8")
    if len(raw) > 255:
        raise ValueError(f"CNAME is {len(raw)} bytes, at most 255 allowed")
    item = bytes((_SDES_CNAME, len(raw))) + raw
    # The item list ends with at least one null octet, padded to a 32-bit boundary.
    item += b"\x00" * (4 - len(item) % 4)
    return _packet(RTCP_SDES, 1, _U32.pack(ssrc) + item)


def _wrap_sorted(seqs: Iterable[int]) -> list[int]:
    """Sort 16-bit sequence numbers in wrap-aware order (smallest circular span)."""
    values = sorted({s & _MASK16 for s in seqs})
    if len(values) < 2:
        return values
    # Start right after the largest circular gap between neighbours.
    best_gap = values[0] + 0x10000 - values[-1]
    best = 0
    for i in range(1, len(values)):
        gap = values[i] - values[i - 1]
        if gap > best_gap:
            best_gap = gap
            best = i
    return values[best:] + values[:best]


def build_nack(sender_ssrc: int, media_ssrc: int, lost: Iterable[int]) -> bytes:
    """Generic NACK (RTPFB FMT 1) packing ``lost`` into PID/BLP pairs, wrap-aware."""
    ordered = _wrap_sorted(lost)
    if not ordered:
        raise ValueError("NACK needs at least one lost sequence number")
    fci = bytearray()
    pid = ordered[0]
    blp = 0
    for seq in ordered[1:]:
        d = (seq - pid - 1) & _MASK16
        if d < 16:
            blp |= 1 << d
        else:
            fci += _NACK_FCI.pack(pid, blp)
            pid = seq
            blp = 0
    fci += _NACK_FCI.pack(pid, blp)
    return _packet(RTCP_RTPFB, _FMT_NACK, _TWO_U32.pack(sender_ssrc, media_ssrc) + bytes(fci))


def build_pli(sender_ssrc: int, media_ssrc: int) -> bytes:
    """Picture loss indication (PSFB FMT 1)."""
    return _packet(RTCP_PSFB, _FMT_PLI, _TWO_U32.pack(sender_ssrc, media_ssrc))


def build_fir(sender_ssrc: int, media_ssrc: int, seq_nr: int) -> bytes:
    """Full intra request (PSFB FMT 4); header media SSRC is 0 per RFC 5104."""
    payload = _TWO_U32.pack(sender_ssrc, 0) + _FIR_FCI.pack(media_ssrc, seq_nr & 0xFF)
    return _packet(RTCP_PSFB, _FMT_FIR, payload)


def build_remb(sender_ssrc: int, bitrate: int, ssrcs: Sequence[int]) -> bytes:
    """REMB (PSFB FMT 15); bitrate is truncated to an 18-bit mantissa and 6-bit exponent."""
    if bitrate < 0:
        raise ValueError(f"REMB bitrate must be >= 0, got {bitrate}")
    if len(ssrcs) > 255:
        raise ValueError(f"REMB carries at most 255 SSRCs, got {len(ssrcs)}")
    exponent = max(bitrate.bit_length() - 18, 0)
    if exponent > _REMB_EXP_MAX:
        raise ValueError(f"REMB bitrate {bitrate} is not representable")
    mantissa = bitrate >> exponent
    payload = (
        _TWO_U32.pack(sender_ssrc, 0)
        + _REMB_HEAD.pack(
            b"REMB", len(ssrcs), (exponent << 2) | (mantissa >> 16), mantissa & 0xFFFF
        )
        + b"".join(_U32.pack(s) for s in ssrcs)
    )
    return _packet(RTCP_PSFB, _FMT_AFB, payload)


def build_bye(ssrcs: Sequence[int]) -> bytes:
    """BYE (PT 203) for up to 31 SSRCs, without a reason string."""
    if len(ssrcs) > MAX_REPORT_BLOCKS:
        raise ValueError(f"BYE carries at most {MAX_REPORT_BLOCKS} SSRCs, got {len(ssrcs)}")
    return _packet(RTCP_BYE, len(ssrcs), b"".join(_U32.pack(s) for s in ssrcs))


# --------------------------------------------------------------------------- NTP time


def ntp_now(wallclock: float) -> int:
    """Unix wall-clock seconds -> 64-bit NTP timestamp (mod 2**64, so 2036+ wraps)."""
    whole = int(wallclock // 1)
    frac = int((wallclock - whole) * _TWO_32)
    if frac >= _TWO_32:  # float rounding right below the next second
        frac = _TWO_32 - 1
    return (((whole + _NTP_UNIX_OFFSET) << 32) + frac) & _MASK64


def ntp_to_unix(ntp: int) -> float:
    """64-bit NTP timestamp -> unix seconds.

    Uses the RFC 4330 era rule: a seconds field with the top bit clear is taken to
    be in era 1 (2036-2104), so the round trip works for 1968..2104.
    """
    seconds = (ntp >> 32) & _MASK32
    if not seconds & 0x80000000:
        seconds += _TWO_32
    return seconds - _NTP_UNIX_OFFSET + (ntp & _MASK32) / _TWO_32


def ntp_middle32(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp, as used for LSR."""
    return (ntp >> 16) & _MASK32
