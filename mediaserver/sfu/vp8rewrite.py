"""VP8 payload descriptor rewriting (RFC 7741) for outputs that switch simulcast layers.

Each simulcast layer numbers its pictures on its own: PictureID, TL0PICIDX and KEYIDX
jump when a subscriber is moved from one layer to another, and a decoder that sees the
jump may wait for a missing picture. :class:`Vp8Rewriter` keeps the three fields of one
output continuous: at a switch (always at a keyframe of the new layer) each field is
re-based to continue from the last value the output sent, then offset by that amount.

Pure bytes: no IO. Also here: :func:`vp8_keyframe_size`, the width and height a VP8
keyframe declares (how the server learns each layer's resolution).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Vp8Descriptor", "Vp8Rewriter", "parse_descriptor", "vp8_keyframe_size"]


@dataclass(frozen=True, slots=True)
class Vp8Descriptor:
    """Where the rewritable fields are (-1: absent) and their values."""

    picture_id_at: int
    picture_id_bits: int  # 7 or 15 (0: absent)
    picture_id: int
    tl0_at: int
    tl0: int
    keyidx_at: int  # the T/Y/KEYIDX byte; KEYIDX only counts when K is set
    keyidx: int
    size: int  # length of the descriptor


def parse_descriptor(payload: bytes) -> Vp8Descriptor | None:
    """Parse the VP8 payload descriptor; None if truncated."""
    n = len(payload)
    if n < 1:
        return None
    b0 = payload[0]
    pic_at = tl0_at = key_at = -1
    pic_bits = pic = tl0 = key = 0
    i = 1
    if b0 & 0x80:
        if n < 2:
            return None
        x = payload[1]
        i = 2
        if x & 0x80:
            if n <= i:
                return None
            pic_at = i
            if payload[i] & 0x80:
                if n <= i + 1:
                    return None
                pic_bits = 15
                pic = ((payload[i] & 0x7F) << 8) | payload[i + 1]
                i += 2
            else:
                pic_bits = 7
                pic = payload[i] & 0x7F
                i += 1
        if x & 0x40:
            if n <= i:
                return None
            tl0_at, tl0 = i, payload[i]
            i += 1
        if x & 0x30:
            if n <= i:
                return None
            if x & 0x10:
                key_at, key = i, payload[i] & 0x1F
            i += 1
    return Vp8Descriptor(pic_at, pic_bits, pic, tl0_at, tl0, key_at, key, i)


def vp8_keyframe_size(payload: bytes) -> tuple[int, int] | None:
    """(width, height) if ``payload`` starts a VP8 keyframe (RFC 6386 §9.1), else None."""
    d = parse_descriptor(payload)
    if d is None or not payload[0] & 0x10 or payload[0] & 0x07:
        return None
    i = d.size
    if len(payload) < i + 10 or payload[i] & 0x01:
        return None  # not a keyframe (inverse key flag set) or too short
    if payload[i + 3 : i + 6] != b"\x9d\x01\x2a":
        return None
    width = (payload[i + 6] | (payload[i + 7] << 8)) & 0x3FFF
    height = (payload[i + 8] | (payload[i + 9] << 8)) & 0x3FFF
    return width, height


def _newer(a: int, b: int, mask: int) -> bool:
    half = (mask + 1) >> 1
    return a != b and ((a - b) & mask) < half


class Vp8Rewriter:
    """Offsets for one output's PictureID (15 or 7 bit), TL0PICIDX (8) and KEYIDX (5)."""

    __slots__ = (
        "_key_off",
        "_last_key",
        "_last_pic",
        "_last_tl0",
        "_pic_off",
        "_rebase",
        "_tl0_off",
    )

    def __init__(self) -> None:
        self._pic_off = 0
        self._tl0_off = 0
        self._key_off = 0
        self._last_pic: int | None = None
        self._last_tl0: int | None = None
        self._last_key: int | None = None
        self._rebase = False

    def switch(self) -> None:
        """The next packet (a keyframe start) comes from another source."""
        self._rebase = True

    def rewrite(self, payload: bytes) -> bytes:
        """The payload with its descriptor fields continued; unchanged if unparseable."""
        d = parse_descriptor(payload)
        if d is None:
            return payload
        if self._rebase:
            self._rebase = False
            if d.picture_id_bits and self._last_pic is not None:
                self._pic_off = self._last_pic + 1 - d.picture_id
            if d.tl0_at >= 0 and self._last_tl0 is not None:
                self._tl0_off = self._last_tl0 + 1 - d.tl0
            if d.keyidx_at >= 0 and self._last_key is not None:
                self._key_off = self._last_key + 1 - d.keyidx
        if not (self._pic_off or self._tl0_off or self._key_off):
            self._remember(d, d.picture_id, d.tl0, d.keyidx)
            return payload
        out = bytearray(payload)
        pic = tl0 = key = 0
        if d.picture_id_bits == 15:
            pic = (d.picture_id + self._pic_off) & 0x7FFF
            out[d.picture_id_at] = 0x80 | (pic >> 8)
            out[d.picture_id_at + 1] = pic & 0xFF
        elif d.picture_id_bits == 7:
            pic = (d.picture_id + self._pic_off) & 0x7F
            out[d.picture_id_at] = pic
        if d.tl0_at >= 0:
            tl0 = (d.tl0 + self._tl0_off) & 0xFF
            out[d.tl0_at] = tl0
        if d.keyidx_at >= 0:
            key = (d.keyidx + self._key_off) & 0x1F
            out[d.keyidx_at] = (out[d.keyidx_at] & 0xE0) | key
        self._remember(d, pic, tl0, key)
        return bytes(out)

    def _remember(self, d: Vp8Descriptor, pic: int, tl0: int, key: int) -> None:
        if d.picture_id_bits:
            mask = 0x7FFF if d.picture_id_bits == 15 else 0x7F
            if self._last_pic is None or _newer(pic, self._last_pic & mask, mask):
                self._last_pic = pic
        if d.tl0_at >= 0 and (self._last_tl0 is None or _newer(tl0, self._last_tl0, 0xFF)):
            self._last_tl0 = tl0
        if d.keyidx_at >= 0 and (self._last_key is None or _newer(key, self._last_key, 0x1F)):
            self._last_key = key
