"""The picture size of H264 video, read from its sequence parameter set (pure).

Two users, one parser: the SFU orders simulcast layers by size and picks the one that
covers a viewer's tile (:mod:`.sfu.layers`; VP8 carries the size in every keyframe's
header, :func:`.sfu.vp8rewrite.vp8_keyframe_size`; H264 in the SPS browsers send at the
start of each keyframe, alone or in a STAP-A, RFC 6184), and the recorder writes it in
the Matroska track header (:mod:`.recording.h264`). Nothing is decoded.
"""

from __future__ import annotations

__all__ = ["h264_keyframe_size", "sps_size"]

NAL_SPS = 7
NAL_STAP_A = 24
#: profiles whose SPS has the chroma / bit depth / scaling matrix fields (H.264 7.3.2.1.1)
_HIGH_PROFILES = frozenset((100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135))


class _Bits:
    """An RBSP bit reader; reading past the end raises IndexError."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def u(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte = self._data[self._pos >> 3]
            value = (value << 1) | ((byte >> (7 - (self._pos & 7))) & 1)
            self._pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("exp-Golomb code too long")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def _rbsp(nal: bytes) -> bytes:
    """The NAL unit's payload without its header byte and emulation-prevention bytes."""
    out = bytearray()
    zeros = 0
    for b in nal[1:]:
        if zeros >= 2 and b == 3:
            zeros = 0
            continue
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def _skip_scaling_list(r: _Bits, size: int) -> None:
    last, nxt = 8, 8
    for _ in range(size):
        if nxt:
            nxt = (last + r.se() + 256) % 256
        last = nxt or last


def sps_size(nal: bytes) -> tuple[int, int] | None:
    """Width and height (after cropping) of an SPS NAL unit; None if it is not one or
    cannot be read."""
    if not nal or nal[0] & 0x1F != NAL_SPS:
        return None
    r = _Bits(_rbsp(nal))
    try:
        profile = r.u(8)
        r.u(16)  # constraint flags, level
        r.ue()  # seq_parameter_set_id
        chroma = 1
        separate_planes = 0
        if profile in _HIGH_PROFILES:
            chroma = r.ue()
            if chroma == 3:
                separate_planes = r.u(1)
            r.ue()  # bit_depth_luma_minus8
            r.ue()  # bit_depth_chroma_minus8
            r.u(1)  # qpprime_y_zero_transform_bypass_flag
            if r.u(1):  # seq_scaling_matrix_present_flag
                for i in range(8 if chroma != 3 else 12):
                    if r.u(1):
                        _skip_scaling_list(r, 16 if i < 6 else 64)
        r.ue()  # log2_max_frame_num_minus4
        poc_type = r.ue()
        if poc_type == 0:
            r.ue()  # log2_max_pic_order_cnt_lsb_minus4
        elif poc_type == 1:
            r.u(1)
            r.se()
            r.se()
            for _ in range(r.ue()):
                r.se()
        r.ue()  # max_num_ref_frames
        r.u(1)  # gaps_in_frame_num_value_allowed_flag
        width_mbs = r.ue() + 1
        height_units = r.ue() + 1
        frame_mbs_only = r.u(1)
        if not frame_mbs_only:
            r.u(1)  # mb_adaptive_frame_field_flag
        r.u(1)  # direct_8x8_inference_flag
        crop = (r.ue(), r.ue(), r.ue(), r.ue()) if r.u(1) else (0, 0, 0, 0)
    except (IndexError, ValueError):
        return None
    if chroma == 0 or separate_planes:
        crop_x, crop_y = 1, 2 - frame_mbs_only
    else:
        crop_x = 2 if chroma in (1, 2) else 1
        crop_y = (2 if chroma == 1 else 1) * (2 - frame_mbs_only)
    width = width_mbs * 16 - crop_x * (crop[0] + crop[1])
    height = (2 - frame_mbs_only) * height_units * 16 - crop_y * (crop[2] + crop[3])
    if width <= 0 or height <= 0:
        return None
    return width, height


def h264_keyframe_size(payload: bytes) -> tuple[int, int] | None:
    """The size in the SPS an RTP payload carries (a single NAL unit or a STAP-A)."""
    if not payload:
        return None
    kind = payload[0] & 0x1F
    if kind == NAL_SPS:
        return sps_size(payload)
    if kind == NAL_STAP_A:
        i = 1
        while i + 2 <= len(payload):
            size = (payload[i] << 8) | payload[i + 1]
            nal = payload[i + 2 : i + 2 + size]
            if nal and nal[0] & 0x1F == NAL_SPS:
                return sps_size(nal)
            i += 2 + size
    return None
