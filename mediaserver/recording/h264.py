"""H264 RTP payloads (RFC 6184, packetization mode 0/1) → access units for Matroska
(pure): NAL units length-prefixed (AVCC) and the avcC record from the stream's SPS/PPS
(the picture size: :func:`mediaserver.h264.sps_size`). Nothing is decoded."""

from __future__ import annotations

import struct

from .assemble import Frame, FrameAssembler

__all__ = ["H264Assembler", "avcc_record"]

_NAL_IDR, _NAL_SPS, _NAL_PPS, _STAP_A, _FU_A = 5, 7, 8, 24, 28


def avcc_record(sps: bytes, pps: bytes) -> bytes:
    """The AVCDecoderConfigurationRecord (ISO 14496-15), Matroska's CodecPrivate."""
    return (
        bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1])
        + struct.pack(">H", len(sps))
        + sps
        + b"\x01"
        + struct.pack(">H", len(pps))
        + pps
    )


class H264Assembler(FrameAssembler):
    """Access units end on the marker bit; a gap drops the unit and every one after it
    until an IDR. ``sps``/``pps`` are the latest seen (for the file's avcC)."""

    video = True

    def __init__(self) -> None:
        super().__init__()
        self.need_keyframe = True
        self.sps: bytes | None = None
        self.pps: bytes | None = None
        self._nals: list[bytes] = []
        self._fu: bytearray | None = None
        self._ts: int | None = None
        self._broken = False

    def resync(self) -> None:
        self._reset()
        self.need_keyframe = True

    def _reset(self) -> None:
        self._nals, self._fu, self._ts, self._broken = [], None, None, False

    def _drop(self) -> None:
        if self._nals or self._fu is not None or self._broken:
            self.dropped_frames += 1
            self.need_keyframe = True
        self._reset()

    def _nal(self, nal: bytes) -> None:
        kind = nal[0] & 0x1F
        if kind == _NAL_SPS:
            self.sps = nal
        elif kind == _NAL_PPS:
            self.pps = nal
        self._nals.append(nal)

    def push(self, timestamp: int, payload: bytes, marker: bool, gap: bool) -> Frame | None:
        if gap:
            self._drop()
            self.need_keyframe = True
            self._broken = True
        if timestamp != self._ts:
            if self._ts is not None and (self._nals or self._fu is not None):
                self._drop()  # the previous unit never saw its marker
            self._broken = gap
            self._ts = timestamp
        try:
            self._payload(payload)
        except (ValueError, IndexError, struct.error):
            self._broken = True
        if not marker:
            return None
        return self._finish(timestamp)

    def _payload(self, payload: bytes) -> None:
        kind = payload[0] & 0x1F
        if 1 <= kind <= 23:
            self._nal(payload)
        elif kind == _STAP_A:
            pos = 1
            while pos + 2 <= len(payload):
                (size,) = struct.unpack_from(">H", payload, pos)
                if not size or pos + 2 + size > len(payload):
                    raise ValueError("STAP-A unit runs past the packet")
                self._nal(payload[pos + 2 : pos + 2 + size])
                pos += 2 + size
        elif kind == _FU_A:
            header = payload[1]
            if header & 0x80:  # start
                self._fu = bytearray([(payload[0] & 0xE0) | (header & 0x1F)])
            elif self._fu is None:
                raise ValueError("FU-A fragment without its start")
            self._fu += payload[2:]
            if header & 0x40:  # end
                self._nal(bytes(self._fu))
                self._fu = None
        else:
            raise ValueError(f"unsupported H264 packet type {kind}")

    def _finish(self, timestamp: int) -> Frame | None:
        if self._broken or self._fu is not None or not self._nals:
            self._drop()
            return None
        nals = self._nals
        self._reset()
        keyframe = any(n[0] & 0x1F == _NAL_IDR for n in nals)
        if keyframe and self.sps is not None and self.pps is not None:
            self.need_keyframe = False
        elif self.need_keyframe:
            self.dropped_frames += 1
            return None
        data = b"".join(struct.pack(">I", len(n)) + n for n in nals)
        return Frame(timestamp, data, keyframe)
