"""RTP packets as the recorder needs them (pure): header fields, the payload, and
sequence numbers extended past their 16-bit wrap."""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["RtpPacket", "SeqUnwrapper", "TsUnwrapper", "Unwrapper", "parse_rtp"]

_HEADER = struct.Struct("!BBHII")


@dataclass(frozen=True, slots=True)
class RtpPacket:
    seq: int
    timestamp: int
    marker: bool
    ssrc: int
    payload: bytes


def parse_rtp(data: bytes) -> RtpPacket:
    """The fields of one RTP packet; :class:`ValueError` naming what is wrong."""
    if len(data) < 12:
        raise ValueError(f"RTP packet of {len(data)} bytes is shorter than its header")
    b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
    if b0 >> 6 != 2:
        raise ValueError(f"RTP version {b0 >> 6}, expected 2")
    start = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:
        if len(data) < start + 4:
            raise ValueError("RTP header extension runs past the packet")
        start += 4 + 4 * int.from_bytes(data[start + 2 : start + 4], "big")
    end = len(data)
    if b0 & 0x20:
        if end == 0 or data[-1] == 0:
            raise ValueError("RTP padding length is 0")
        end -= data[-1]
    if start > end:
        raise ValueError("RTP header and padding are longer than the packet")
    return RtpPacket(seq, ts, bool(b1 & 0x80), ssrc, bytes(data[start:end]))


class Unwrapper:
    """Wrapping counters (16-bit sequence numbers, 32-bit timestamps) → monotonic
    integers: each value is taken as the one nearest to the highest seen."""

    def __init__(self, bits: int) -> None:
        self._mask = (1 << bits) - 1
        self._half = 1 << (bits - 1)
        self._last: int | None = None

    def unwrap(self, value: int) -> int:
        last = self._last
        if last is None:
            self._last = value
            return value
        delta = (value - last) & self._mask
        if delta >= self._half:
            delta -= self._mask + 1
        out = last + delta
        if delta > 0:
            self._last = out
        return out


def SeqUnwrapper() -> Unwrapper:
    return Unwrapper(16)


def TsUnwrapper() -> Unwrapper:
    return Unwrapper(32)
