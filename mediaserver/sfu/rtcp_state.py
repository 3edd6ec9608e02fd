"""Per-stream RTCP bookkeeping for the SFU: receive statistics and receiver-report
blocks (RFC 3550 A.1, A.3, A.8), NACK generation (RFC 4585), the keyframe-request
throttle, REMB aggregation over subscribers, and the publisher's sender-report clock.

Pure logic like :mod:`.rtcp`: no IO, no asyncio, time passed in explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass

from .rtcp import (  # the wire format's widths
    _LOST_MAX,
    _LOST_MIN,
    _MASK16,
    _MASK32,
    _MASK64,
    _TWO_32,
    _TWO_64,
    ReportBlock,
    ntp_middle32,
)

__all__ = [
    "InboundStreamStats",
    "KeyframeRequestThrottle",
    "NackTracker",
    "RembAggregator",
    "SenderReportClock",
]


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

    @property
    def pending(self) -> bool:
        """Sequence numbers are missing (``due`` may have retries to send)."""
        return bool(self._missing)

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
