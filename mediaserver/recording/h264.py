"""H264 RTP payloads (RFC 6184, packetization mode 0/1) → access units for Matroska
(pure): NAL units length-prefixed (AVCC), the avcC record from the stream's SPS/PPS, and
the picture size from the SPS. Nothing is decoded."""

from __future__ import annotations

import struct

from .assemble import Frame, FrameAssembler

__all__ = ["H264Assembler", "avcc_record", "sps_dimensions"]

_NAL_IDR, _NAL_SPS, _NAL_PPS, _STAP_A, _FU_A = 5, 7, 8, 24, 28
#: Profiles whose SPS carries chroma format and bit depths (H.264 §7.3.2.1.1).
_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})


class _Bits:
    """Reads an RBSP (emulation prevention bytes removed) bit by bit."""

    def __init__(self, nal: bytes) -> None:
        self.data = nal.replace(b"\x00\x00\x03", b"\x00\x00")
        self.pos = 0

    def bit(self) -> int:
        byte = self.pos >> 3
        if byte >= len(self.data):
            raise ValueError("SPS ends too early")
        value = (self.data[byte] >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return value

    def bits(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = (value << 1) | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad exp-Golomb code in SPS")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def _skip_scaling_list(r: _Bits, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt:
            nxt = (last + r.se() + 256) % 256
        last = nxt or last


def sps_dimensions(sps: bytes) -> tuple[int, int]:
    """(width, height) from an SPS NAL unit (with its one-byte NAL header)."""
    r = _Bits(sps[1:])
    profile = r.bits(8)
    r.bits(16)  # constraint flags, level
    r.ue()  # seq_parameter_set_id
    chroma = 1
    if profile in _HIGH_PROFILES:
        chroma = r.ue()
        if chroma == 3:
            r.bit()  # separate_colour_plane_flag
        r.ue()
        r.ue()  # bit depths
        r.bit()  # qpprime_y_zero_transform_bypass_flag
        if r.bit():  # seq_scaling_matrix_present_flag
            for i in range(12 if chroma == 3 else 8):
                if r.bit():
                    _skip_scaling_list(r, 16 if i < 6 else 64)
    r.ue()  # log2_max_frame_num_minus4
    poc_type = r.ue()
    if poc_type == 0:
        r.ue()
    elif poc_type == 1:
        r.bit()
        r.se()
        r.se()
        for _ in range(r.ue()):
            r.se()
    r.ue()  # max_num_ref_frames
    r.bit()  # gaps_in_frame_num_value_allowed_flag
    width_mbs = r.ue() + 1
    height_units = r.ue() + 1
    frame_mbs_only = r.bit()
    if not frame_mbs_only:
        r.bit()  # mb_adaptive_frame_field_flag
    r.bit()  # direct_8x8_inference_flag
    width = width_mbs * 16
    height = (2 - frame_mbs_only) * height_units * 16
    if r.bit():  # frame_cropping_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        unit_x = 1 if chroma == 0 or chroma == 3 else 2
        unit_y = (2 - frame_mbs_only) * (2 if chroma == 1 else 1)
        width -= (left + right) * unit_x
        height -= (top + bottom) * unit_y
    return width, height


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
