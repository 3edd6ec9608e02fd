"""Pure RTCP logic for the SFU: parsing, serialising and per-stream bookkeeping.

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
    "InboundStreamStats",
    "KeyframeRequestThrottle",
    "Nack",
    "NackTracker",
    "Other",
    "Pli",
    "ReceiverReport",
    "Remb",
    "RembAggregator",
    "ReportBlock",
    "RtcpItem",
    "SenderReport",
    "SenderReportClock",
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

_LOST_MIN = -(1 << 23)
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


def parse_rtcp(data: bytes) -> list[RtcpItem]:
    """Parse a (compound) RTCP datagram.

    Unknown packet types become :class:`Other`. Raises :class:`ValueError` (and only
    that) for empty, truncated or malformed input.
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


# --------------------------------------------------------------------------- receive stats


class InboundStreamStats:
    """Receive statistics for one inbound SSRC (RFC 3550 A.1, A.3, A.8).

    Sequence tracking is probation-free: a jump of more than ``MAX_DROPOUT`` in
    either direction is treated as a restart of the sequence space. Packets up to
    ``MAX_DROPOUT`` behind the highest are late (reordered or retransmitted) and
    are counted as received, as in RFC 3550, so cumulative loss can go negative
    when duplicates arrive. Jitter is updated only from in-order packets whose RTP
    timestamp differs from the previous sample (as libwebrtc does), so paced
    packets of one video frame and late retransmissions do not inflate it.
    """

    MAX_DROPOUT = 3000

    __slots__ = (
        "_base",
        "_clock_rate",
        "_cycles",
        "_expected_prior",
        "_jitter_q4",
        "_last_rtp_ts",
        "_last_transit",
        "_lsr",
        "_max_seq",
        "_received",
        "_received_prior",
        "_sr_arrival",
        "ssrc",
    )

    def __init__(self, ssrc: int, clock_rate: int) -> None:
        if clock_rate <= 0:
            raise ValueError(f"clock_rate must be positive, got {clock_rate}")
        self.ssrc = ssrc
        self._clock_rate = clock_rate
        self._max_seq = -1  # -1: no packet yet
        self._cycles = 0  # multiple of 65536
        self._base = 0  # extended sequence number of the first packet
        self._received = 0
        self._expected_prior = 0
        self._received_prior = 0
        self._jitter_q4 = 0  # jitter * 16 (RFC 3550 A.8 integer form)
        self._last_transit = -1  # -1: no jitter sample yet
        self._last_rtp_ts = -1
        self._lsr = 0
        self._sr_arrival = -1.0  # < 0: no SR yet

    # -- per packet ----------------------------------------------------------

    def _restart(self, seq: int) -> None:
        self._max_seq = seq
        self._cycles = 0
        self._base = seq
        self._received = 0
        self._expected_prior = 0
        self._received_prior = 0
        self._last_transit = -1

    def on_packet(self, seq: int, rtp_ts: int, arrival: float) -> None:
        """Account one received RTP packet (``arrival`` in seconds)."""
        max_seq = self._max_seq
        if max_seq < 0:
            self._restart(seq)
            in_order = True
        else:
            delta = (seq - max_seq) & 0xFFFF
            if delta >= 0x8000:
                delta -= 0x10000
            if 0 < delta <= self.MAX_DROPOUT:
                if seq < max_seq:
                    self._cycles += 0x10000
                self._max_seq = seq
                in_order = True
            elif -self.MAX_DROPOUT <= delta <= 0:  # duplicate, reordered or retransmitted
                ext = self._cycles + max_seq + delta
                if ext < self._base:
                    self._base = ext
                in_order = False
            else:
                self._restart(seq)
                in_order = True
        self._received += 1
        if in_order and rtp_ts != self._last_rtp_ts:
            self._last_rtp_ts = rtp_ts
            transit = (int(arrival * self._clock_rate) - rtp_ts) & 0xFFFFFFFF
            last = self._last_transit
            self._last_transit = transit
            if last >= 0:
                d = (transit - last) & 0xFFFFFFFF
                if d >= 0x80000000:
                    d = 0x100000000 - d
                self._jitter_q4 += d - ((self._jitter_q4 + 8) >> 4)

    def on_sender_report(self, ntp: int, arrival: float) -> None:
        """Remember the last SR from this source (for LSR/DLSR)."""
        self._lsr = ntp_middle32(ntp)
        self._sr_arrival = arrival

    # -- read-outs -----------------------------------------------------------

    @property
    def packets_received(self) -> int:
        return self._received

    @property
    def extended_highest_seq(self) -> int:
        return 0 if self._max_seq < 0 else self._cycles + self._max_seq

    @property
    def expected(self) -> int:
        return 0 if self._max_seq < 0 else self.extended_highest_seq - self._base + 1

    @property
    def cumulative_lost(self) -> int:
        """Expected minus received, unclamped (negative with duplicates)."""
        return self.expected - self._received

    @property
    def jitter(self) -> int:
        """Interarrival jitter in RTP timestamp units."""
        return self._jitter_q4 >> 4

    def report_block(self, now: float) -> ReportBlock:
        """Build a report block; resets the interval used for ``fraction_lost``."""
        expected = self.expected
        expected_interval = expected - self._expected_prior
        received_interval = self._received - self._received_prior
        self._expected_prior = expected
        self._received_prior = self._received
        lost_interval = expected_interval - received_interval
        if expected_interval <= 0 or lost_interval <= 0:
            fraction = 0
        else:
            fraction = min((lost_interval << 8) // expected_interval, 255)
        lost = min(max(expected - self._received, _LOST_MIN), _LOST_MAX)
        if self._sr_arrival < 0:
            lsr = dlsr = 0
        else:
            lsr = self._lsr
            dlsr = min(max(int((now - self._sr_arrival) * 65536), 0), _MASK32)
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=fraction,
            packets_lost=lost,
            highest_seq=self.extended_highest_seq & _MASK32,
            jitter=self.jitter & _MASK32,
            lsr=lsr,
            dlsr=dlsr,
        )


# --------------------------------------------------------------------------- NACK generation


@dataclass(slots=True)
class _Missing:
    first_seen: float
    last_nack: float
    count: int


class NackTracker:
    """Tracks missing inbound sequence numbers of one publisher stream and when to NACK.

    A forward gap larger than ``max_gap`` is a restart (nothing is NACKed). A
    backward jump larger than ``max_gap`` is a restart only if the next packet
    confirms it (continues from the new position); otherwise it is a stray late
    packet and ignored.
    """

    def __init__(
        self,
        retry_interval: float = 0.1,
        max_retries: int = 5,
        max_age: float = 1.0,
        max_gap: int = 500,
        max_missing: int = 500,
    ) -> None:
        self.retry_interval = retry_interval
        self.max_retries = max_retries
        self.max_age = max_age
        self.max_gap = max_gap
        self.max_missing = max_missing
        self._highest = -1  # -1: no packet yet
        self._restart_candidate = -1
        self._missing: dict[int, _Missing] = {}  # insertion order == wrap-aware seq order

    @property
    def missing(self) -> tuple[int, ...]:
        """Currently missing sequence numbers, oldest first."""
        return tuple(self._missing)

    def _reset(self, seq: int) -> None:
        self._missing.clear()
        self._highest = seq
        self._restart_candidate = -1

    def on_packet(self, seq: int, now: float) -> list[int]:
        """Account one packet; returns sequence numbers to NACK right now."""
        seq &= _MASK16
        highest = self._highest
        if highest < 0:
            self._highest = seq
            return []
        delta = (seq - highest) & _MASK16
        if delta >= 0x8000:
            delta -= 0x10000
        if delta <= 0:
            if self._missing.pop(seq, None) is not None or delta == 0:
                return []
            if -delta > self.max_gap:
                if seq == self._restart_candidate:
                    self._reset(seq)
                else:
                    self._restart_candidate = (seq + 1) & _MASK16
            return []
        self._restart_candidate = -1
        if delta > self.max_gap:
            self._reset(seq)
            return []
        self._highest = seq
        if delta == 1:
            return []
        new = [(highest + i) & _MASK16 for i in range(1, delta)]
        if len(new) > self.max_missing:
            new = new[len(new) - self.max_missing :]
        missing = self._missing
        for s in new:
            missing.pop(s, None)  # stale entry from a previous lap: re-add at the end
            missing[s] = _Missing(now, now, 1)
        excess = len(missing) - self.max_missing
        if excess > 0:
            for s in list(missing)[:excess]:
                del missing[s]
        return new

    def due(self, now: float) -> list[int]:
        """Missing seqs to NACK again now; drops entries too old or out of retries."""
        out: list[int] = []
        expired: list[int] = []
        for seq, entry in self._missing.items():
            if now - entry.first_seen >= self.max_age or entry.count >= self.max_retries:
                expired.append(seq)
            elif now - entry.last_nack >= self.retry_interval:
                entry.last_nack = now
                entry.count += 1
                out.append(seq)
        for seq in expired:
            del self._missing[seq]
        return out


# --------------------------------------------------------------------------- keyframe requests


class KeyframeRequestThrottle:
    """Rate limit for PLI/FIR toward one publisher stream, plus the FIR sequence number."""

    def __init__(self, min_interval: float = 0.3) -> None:
        self.min_interval = min_interval
        self._last: float | None = None
        self._fir_seq = 0

    def should_send(self, now: float) -> bool:
        """True at most once per ``min_interval``; the first call is always True."""
        if self._last is None or now - self._last >= self.min_interval:
            self._last = now
            return True
        return False

    def next_fir_seq(self) -> int:
        """FIR command sequence number: 0, 1, ..., 255, 0, ..."""
        seq = self._fir_seq
        self._fir_seq = (seq + 1) & 0xFF
        return seq


# --------------------------------------------------------------------------- REMB


class RembAggregator:
    """Minimum of the subscribers' bandwidth estimates for one publisher stream."""

    def __init__(self, max_age: float = 5.0) -> None:
        self.max_age = max_age
        self._estimates: dict[str, tuple[int, float]] = {}

    def update(self, subscriber_id: str, bitrate: int, now: float) -> None:
        self._estimates[subscriber_id] = (bitrate, now)

    def remove(self, subscriber_id: str) -> None:
        self._estimates.pop(subscriber_id, None)

    def minimum(self, now: float) -> int | None:
        """Minimum over estimates younger than ``max_age``; stale ones are dropped."""
        best: int | None = None
        stale: list[str] = []
        for sub, (bitrate, at) in self._estimates.items():
            if now - at >= self.max_age:
                stale.append(sub)
            elif best is None or bitrate < best:
                best = bitrate
        for sub in stale:
            del self._estimates[sub]
        return best


# --------------------------------------------------------------------------- SR clock


class SenderReportClock:
    """Extrapolates a publisher's NTP/RTP timestamp pair from its latest SR.

    ``arrival`` and ``now`` are the local monotonic clock; the outputs are in the
    publisher's NTP and RTP timelines, so forwarded SRs keep audio/video lip sync.
    """

    def __init__(self) -> None:
        self._ntp = 0
        self._rtp_ts = 0
        self._arrival: float | None = None

    def on_sender_report(self, ntp: int, rtp_ts: int, arrival: float) -> None:
        self._ntp = ntp & _MASK64
        self._rtp_ts = rtp_ts & _MASK32
        self._arrival = arrival

    @property
    def has_reference(self) -> bool:
        return self._arrival is not None

    def _elapsed(self, now: float) -> float:
        if self._arrival is None:
            raise RuntimeError("SenderReportClock has no sender report yet")
        return now - self._arrival

    def rtp_at(self, now: float, clock_rate: int) -> int:
        """Publisher RTP timestamp at local time ``now`` (mod 2**32)."""
        return (self._rtp_ts + round(self._elapsed(now) * clock_rate)) % _TWO_32

    def ntp_at(self, now: float) -> int:
        """Publisher NTP timestamp at local time ``now`` (mod 2**64)."""
        return (self._ntp + round(self._elapsed(now) * _TWO_32)) % _TWO_64
