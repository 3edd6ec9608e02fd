"""RTP payloads → whole encoded frames, without decoding (pure).

VP8 (RFC 7741): a frame is the packets of one RTP timestamp, from the one whose payload
descriptor has S=1 and partition index 0 to the one with the marker bit; a frame with a
missing packet is dropped, and so is every frame after it until the next keyframe.
Opus (RFC 7587): each payload is one frame.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Frame", "FrameAssembler", "OpusAssembler", "Vp8Assembler", "vp8_dimensions"]


@dataclass(frozen=True, slots=True)
class Frame:
    #: Extended RTP timestamp of the frame.
    timestamp: int
    data: bytes
    keyframe: bool


class FrameAssembler:
    """Base: feed packets in sequence order (``gap`` when packets before were lost)."""

    video = False

    def __init__(self) -> None:
        self.dropped_frames = 0
        #: Video: frames are being dropped until the next keyframe.
        self.need_keyframe = False

    def push(self, timestamp: int, payload: bytes, marker: bool, gap: bool) -> Frame | None:
        raise NotImplementedError

    def resync(self) -> None:
        """Forget any partial frame (the writer dropped a frame, or the sender restarted)."""


class OpusAssembler(FrameAssembler):
    def push(self, timestamp: int, payload: bytes, marker: bool, gap: bool) -> Frame | None:
        if not payload:
            return None  # DTX/empty: nothing to write
        return Frame(timestamp, payload, True)


def _vp8_descriptor_length(payload: bytes) -> tuple[int, bool, int]:
    """(length of the RFC 7741 payload descriptor, S bit, partition index)."""
    if not payload:
        raise ValueError("empty VP8 payload")
    b0 = payload[0]
    n = 1
    if b0 & 0x80:  # X: extension byte
        if len(payload) < 2:
            raise ValueError("VP8 payload descriptor truncated")
        ext = payload[1]
        n = 2
        if ext & 0x80:  # I: picture id, 7 or 15 bits
            if len(payload) <= n:
                raise ValueError("VP8 picture id truncated")
            n += 2 if payload[n] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            n += 1
        if ext & 0x30:  # T or K: TID/Y/KEYIDX
            n += 1
    if n >= len(payload):
        raise ValueError("VP8 payload has a descriptor and no data")
    return n, bool(b0 & 0x10), b0 & 0x07


def vp8_dimensions(frame: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 keyframe's header (RFC 6386 §9.1), else None."""
    if len(frame) < 10 or frame[0] & 0x01 or frame[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(frame[6:8], "little") & 0x3FFF
    height = int.from_bytes(frame[8:10], "little") & 0x3FFF
    return width, height


class Vp8Assembler(FrameAssembler):
    video = True

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []
        self._ts: int | None = None
        self._broken = False
        #: A frame was lost since the last keyframe: inter frames cannot be decoded.
        self.need_keyframe = True

    def resync(self) -> None:
        self._parts = []
        self._ts = None
        self._broken = False
        self.need_keyframe = True

    def _drop(self) -> None:
        if self._parts or self._broken:
            self.dropped_frames += 1
            self.need_keyframe = True
        self._parts = []
        self._broken = False

    def push(self, timestamp: int, payload: bytes, marker: bool, gap: bool) -> Frame | None:
        try:
            skip, start, partition = _vp8_descriptor_length(payload)
        except ValueError:
            self._drop()
            self._ts = None
            return None
        if gap:
            # lost packets: this frame or one before it is gone, so inter frames that
            # follow may refer to what we do not have
            if timestamp == self._ts:  # within this frame: dropped (and counted) at its end
                self._parts = []
                self._broken = True
            else:
                self._drop()
            self.need_keyframe = True
        elif timestamp != self._ts and (self._parts or self._broken):
            self._drop()  # the previous frame never saw its marker
        self._ts = timestamp
        if start and partition == 0:
            if self._parts:
                self._drop()
            self._broken = False
            self._parts = [payload[skip:]]
        elif self._parts and not self._broken:
            self._parts.append(payload[skip:])
        else:
            self._broken = True  # a frame whose first packet we do not have
        if not marker:
            return None
        if self._broken or not self._parts:
            self._drop()
            self._ts = None
            return None
        data = b"".join(self._parts)
        self._parts = []
        self._ts = None
        keyframe = not data[0] & 0x01
        if keyframe:
            self.need_keyframe = False
        elif self.need_keyframe:
            self.dropped_frames += 1
            return None
        return Frame(timestamp, data, keyframe)
