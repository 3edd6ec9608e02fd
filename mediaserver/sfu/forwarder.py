"""The hot forwarding path: RTP bytes in, rewritten RTP bytes out.

No aiortc imports and no full packet parsing here: every inbound packet is read with a
few ``struct`` calls and written once per subscriber with a fresh 12-byte header, a
per-subscriber header-extension block and the untouched payload.

Ownership: a :class:`ForwardingTrack` is the media of one publication; it owns one
:class:`OutputStream` per subscriber it is forwarded to.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass

from .vp8rewrite import Vp8Rewriter

__all__ = [
    "AUDIO_CACHE_SIZE",
    "CACHE_SIZE",
    "EXT_ABS_SEND_TIME",
    "EXT_AUDIO_LEVEL",
    "EXT_MID",
    "MAX_PACKET_BYTES",
    "ForwardingTrack",
    "InboundExtIds",
    "OutputParams",
    "OutputStream",
    "abs_send_time",
    "answer_nack",
    "is_keyframe_start",
    "mid_prefix",
    "rtp_payload_offset",
    "seq_newer",
    "unwrap_rtx",
    "wrap_rtx",
]

EXT_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
EXT_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
EXT_ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"

#: aiortc's ``RTCDtlsTransport._send_rtp`` accepts at most this many bytes of clear RTP.
MAX_PACKET_BYTES = 1356
#: Packets kept per output to answer NACKs (a power of two).
#: Slots of a video output's NACK cache (packets it can resend), a power of two.
CACHE_SIZE = 512
#: An audio output's: NACK is not offered for audio (RTX neither), so a browser does not
#: NACK Opus; the few slots answer a client that NACKs anyway (1.3 s at 50 packets/s).
AUDIO_CACHE_SIZE = 64

_hdr = struct.Struct("!BBHII")
_u16 = struct.Struct("!H")
_seq_ts = struct.Struct("!HI")
_ext_hdr = struct.Struct("!HH")
_ssrc = struct.Struct("!I")
_PADDING = (b"", b"\x00", b"\x00\x00", b"\x00\x00\x00")


#: Output timestamp step across a source change (a publisher's fresh connection).
TS_REBASE_STEP = 3000


def seq_newer(a: int, b: int) -> bool:
    """True if 16-bit sequence number ``a`` is after ``b`` (wrap-aware)."""
    return a != b and ((a - b) & 0xFFFF) < 0x8000


def rtp_payload_offset(data: bytes) -> int:
    """Offset of the payload in an RTP packet (after CSRCs and header extension).

    Raises ``ValueError`` if the packet is too short for its own header.
    """
    n = len(data)
    if n < 12:
        raise ValueError("RTP packet shorter than 12 bytes")
    off = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:
        if n < off + 4:
            raise ValueError("RTP header extension truncated")
        off += 4 + 4 * _u16.unpack_from(data, off + 2)[0]
    if off > n:
        raise ValueError("RTP header longer than packet")
    return off


def abs_send_time(now: float) -> bytes:
    """The 24-bit 6.18 fixed-point abs-send-time value for wall time ``now``."""
    v = int(now * 262144.0) & 0xFFFFFF
    return bytes(((v >> 16) & 0xFF, (v >> 8) & 0xFF, v & 0xFF))


def is_keyframe_start(codec: str, payload: bytes) -> bool:
    """True if an RTP payload is the first packet of a keyframe (VP8 or H264)."""
    if not payload:
        return False
    if codec == "VP8":
        b0 = payload[0]
        # S bit set and partition index 0: start of a frame.
        if not (b0 & 0x10) or (b0 & 0x07):
            return False
        i = 1
        if b0 & 0x80:  # X: extension byte follows
            if len(payload) < 2:
                return False
            x = payload[1]
            i = 2
            if x & 0x80:  # I: picture id, 7 or 15 bits
                if len(payload) <= i:
                    return False
                i += 2 if payload[i] & 0x80 else 1
            if x & 0x40:  # L: TL0PICIDX
                i += 1
            if x & 0x30:  # T or K
                i += 1
        if len(payload) <= i:
            return False
        # VP8 payload header: P bit (inverse keyframe flag) is the lowest bit.
        return (payload[i] & 0x01) == 0
    if codec == "H264":
        nal = payload[0] & 0x1F
        if nal in (5, 7):
            return True
        if nal == 24:  # STAP-A: walk aggregated NAL units
            i = 1
            while i + 2 < len(payload):
                size = (payload[i] << 8) | payload[i + 1]
                if i + 2 >= len(payload):
                    break
                if payload[i + 2] & 0x1F in (5, 7):
                    return True
                i += 2 + size
            return False
        if nal == 28 and len(payload) > 1:  # FU-A: start bit and original type
            return bool(payload[1] & 0x80) and (payload[1] & 0x1F) in (5, 7)
        return False
    # Audio and unknown codecs: every packet is decodable on its own.
    return True


def unwrap_rtx(data: bytes, ssrc: int, payload_type: int) -> bytes | None:
    """Turn an RFC 4588 retransmission packet back into the original packet.

    Returns ``None`` for a malformed packet or for RTX padding (no OSN).
    """
    try:
        off = rtp_payload_offset(data)
    except ValueError:
        return None
    end = len(data)
    if data[0] & 0x20:  # padding
        end -= data[-1]
    if end - off < 2:
        return None
    b0 = data[0] & ~0x20 & 0xFF
    b1 = (data[1] & 0x80) | payload_type
    ts = _ssrc.unpack_from(data, 4)[0]
    return (
        _hdr.pack(b0, b1, _u16.unpack_from(data, off)[0], ts, ssrc)
        + data[12:off]
        + data[off + 2 : end]
    )


@dataclass(frozen=True, slots=True)
class InboundExtIds:
    """Header-extension ids the publisher negotiated (0 = not negotiated)."""

    audio_level: int = 0
    abs_send_time: int = 0


@dataclass(frozen=True, slots=True)
class OutputParams:
    """What one subscriber negotiated for one forwarded track."""

    ssrc: int
    payload_type: int
    mid: str
    mid_ext_id: int = 0
    audio_level_ext_id: int = 0
    abs_send_time_ext_id: int = 0
    rtx_ssrc: int = 0
    rtx_payload_type: int = 0  # 0 = no RTX: NACKed packets are resent as they were


class OutputStream:
    """One publication as forwarded to one subscriber: rewrite state and NACK cache."""

    __slots__ = (
        "_al_elem",
        "_ast_elem",
        "_cache",
        "_cache_mask",
        "_ext_prefix",
        "_next_seq",
        "_rebase_ts",
        "_resync",
        "_rtx_seq",
        "_seq_offset",
        "_started_at_seq",
        "_ts_offset",
        "_vp8_rewriter",
        "active",
        "drop_filter",
        "last_rtp_ts",
        "octets",
        "packets",
        "params",
        "rtx_sent",
        "sink",
        "subscriber_id",
        "waiting_keyframe",
    )

    def __init__(self, params: OutputParams, subscriber_id: str, *, video: bool) -> None:
        self.params = params
        self.subscriber_id = subscriber_id
        self._ts_offset = random.getrandbits(32)
        self._next_seq = random.randrange(0, 0x8000)
        self._seq_offset = 0
        self._resync = True
        self._rebase_ts = 0  # timestamp step to the next source (0: no rebase)
        self._started_at_seq = 0
        self._rtx_seq = random.randrange(0, 0x8000)
        slots = CACHE_SIZE if video else AUDIO_CACHE_SIZE
        self._cache: list[bytes | None] = [None] * slots
        self._cache_mask = slots - 1
        self._ext_prefix = mid_prefix(params)
        # one-byte extension element headers (b"" when not negotiated)
        self._al_elem = (
            bytes((params.audio_level_ext_id << 4,)) if params.audio_level_ext_id else b""
        )
        self._ast_elem = (
            bytes(((params.abs_send_time_ext_id << 4) | 2,)) if params.abs_send_time_ext_id else b""
        )
        self.active = False  # set once the subscriber's transport can carry media
        self.waiting_keyframe = video
        self.packets = 0
        self.octets = 0
        self.last_rtp_ts = 0  # the output timestamp of the last packet sent
        self.rtx_sent = 0
        #: Test hook: return True to drop a packet after caching it (simulated loss).
        self.drop_filter: Callable[[int], bool] | None = None
        #: Where packets for this output go (the subscriber connection's send).
        self.sink: Callable[[bytes], bool] | None = None
        #: Simulcast VP8 outputs: the payload rewrite applied before ``build``
        #: (descriptor continuity across layer switches, see vp8rewrite.py).
        self._vp8_rewriter: Vp8Rewriter | None = None

    def rewrite_vp8(self) -> None:
        """From now on keep the VP8 descriptor fields continuous across the layer
        switches of a simulcast publication (:class:`~.vp8rewrite.Vp8Rewriter`)."""
        self._vp8_rewriter = Vp8Rewriter()

    def vp8_switch(self) -> None:
        """The next packet (a keyframe start) comes from another layer: re-base the VP8
        fields on it (nothing when :meth:`rewrite_vp8` was not called)."""
        if self._vp8_rewriter is not None:
            self._vp8_rewriter.switch()

    def pause(self, *, video: bool, rebase_ts: bool = False, ts_step: int = TS_REBASE_STEP) -> None:
        """Stop forwarding; the next packet resynchronises the sequence numbers (and,
        with ``rebase_ts``, the timestamps: a new source continues the old timeline
        ``ts_step`` ticks after the last packet sent)."""
        self._resync = True
        self._rebase_ts = ((max(1, ts_step) & 0xFFFFFFFF) or 1) if rebase_ts else 0
        self.waiting_keyframe = video

    def output_ts(self, publisher_ts: int) -> int:
        return (publisher_ts + self._ts_offset) & 0xFFFFFFFF

    def build(
        self, b0: int, b1: int, seq: int, ts: int, audio_level: bytes, ast: bytes, payload: bytes
    ) -> bytes | None:
        """Rewrite one packet for this output and remember it for NACKs.

        Returns ``None`` for a packet from before the last resynchronisation.
        """
        floor = self._started_at_seq
        if self._resync:
            self._seq_offset = (self._next_seq - seq) & 0xFFFF
            if self._rebase_ts and self.packets:
                self._ts_offset = (self.last_rtp_ts + self._rebase_ts - ts) & 0xFFFFFFFF
            self._rebase_ts = 0
            self._started_at_seq = seq
            self._resync = False
        elif seq != floor and not seq_newer(seq, floor):
            return None  # from before the last resynchronisation (or far too old)
        elif ((seq - floor) & 0xFFFF) > 0x4000:
            # Keep the floor trailing the stream so "older than the floor" stays
            # meaningful across the 16-bit wrap.
            self._started_at_seq = (seq - 0x2000) & 0xFFFF
        p = self.params
        out_seq = (seq + self._seq_offset) & 0xFFFF
        out_ts = (ts + self._ts_offset) & 0xFFFFFFFF
        b1 = (b1 & 0x80) | p.payload_type
        ext = self._ext_prefix
        if audio_level and self._al_elem:
            ext += self._al_elem + audio_level
        if ast and self._ast_elem:
            ext += self._ast_elem + ast
        pkt: bytes | None = None
        if ext:
            ext += _PADDING[-len(ext) & 3]
            pkt = b"".join(
                (
                    _hdr.pack(0x90 | (b0 & 0x20), b1, out_seq, out_ts, p.ssrc),
                    _ext_hdr.pack(0xBEDE, len(ext) >> 2),
                    ext,
                    payload,
                )
            )
            if len(pkt) > MAX_PACKET_BYTES:
                pkt = None  # extensions made it too large: send it without them
        if pkt is None:
            pkt = _hdr.pack(0x80 | (b0 & 0x20), b1, out_seq, out_ts, p.ssrc) + payload
            if len(pkt) > MAX_PACKET_BYTES:
                return None
        if seq_newer((out_seq + 1) & 0xFFFF, self._next_seq):
            self._next_seq = (out_seq + 1) & 0xFFFF
        self._cache[out_seq & self._cache_mask] = pkt
        self.packets += 1
        self.octets += len(payload)
        self.last_rtp_ts = out_ts
        return pkt

    def retransmission(self, out_seq: int) -> bytes | None:
        """The packet to send for a NACKed sequence number (RTX-wrapped if negotiated)."""
        return answer_nack(self, self._cache[out_seq & self._cache_mask], out_seq)


def answer_nack(output: OutputStream, cached: bytes | None, out_seq: int) -> bytes | None:
    """What ``output`` sends for NACKed ``out_seq`` given its cache entry: the packet
    itself, its RTX wrapping (counted, with the RTX stream's next sequence number), or
    ``None`` when the entry has been overwritten."""
    if cached is None or _u16.unpack_from(cached, 2)[0] != out_seq:
        return None
    params = output.params
    if not params.rtx_payload_type:
        return cached
    rtx = wrap_rtx(cached, params, output._rtx_seq)
    if rtx is not None:
        output._rtx_seq = (output._rtx_seq + 1) & 0xFFFF
        output.rtx_sent += 1
    return rtx


def mid_prefix(params: OutputParams) -> bytes:
    """The one-byte mid element an output writes first in its extension block."""
    if params.mid_ext_id and params.mid:
        mid = params.mid.encode()[:16]
        return bytes(((params.mid_ext_id << 4) | (len(mid) - 1),)) + mid
    return b""


def wrap_rtx(pkt: bytes, params: OutputParams, rtx_seq: int) -> bytes | None:
    """RFC 4588: an output packet as a retransmission on the RTX stream (``None`` when
    it would exceed :data:`MAX_PACKET_BYTES`)."""
    off = rtp_payload_offset(pkt)
    end = len(pkt)
    b0 = pkt[0]
    if b0 & 0x20:
        end -= pkt[-1]
        b0 &= ~0x20 & 0xFF
    rtx = (
        _hdr.pack(
            b0,
            (pkt[1] & 0x80) | params.rtx_payload_type,
            rtx_seq,
            _ssrc.unpack_from(pkt, 4)[0],
            params.rtx_ssrc,
        )
        + pkt[12:off]
        + pkt[2:4]
        + pkt[off:end]
    )
    if len(rtx) > MAX_PACKET_BYTES:
        return None
    return rtx


class ForwardingTrack:
    """One publication's media: reads each inbound packet once, writes it per output."""

    __slots__ = (
        "codec",
        "ext_ids",
        "level",
        "muted",
        "outputs",
        "sent_octets",
        "sent_packets",
        "video",
    )

    def __init__(self, codec: str, *, video: bool, ext_ids: InboundExtIds) -> None:
        self.codec = codec
        self.video = video
        self.ext_ids = ext_ids
        self.outputs: list[OutputStream] = []
        self.muted = False
        #: RFC 6464 level (0 loudest .. 127 silence) of the last packet, -1 if absent.
        self.level = -1
        #: Packets (and their bytes) the native path sent itself; always 0 here, where
        #: every packet is returned by :meth:`route` (see fastpath.py).
        self.sent_packets = 0
        self.sent_octets = 0

    def route(self, data: bytes, now: float) -> tuple[list[tuple[OutputStream, bytes]], bool]:
        """Rewrite ``data`` for every active output.

        Returns the packets to send and whether the packet starts a keyframe (so the
        caller can tell who was waiting for one). Raises ``ValueError`` on a malformed
        packet.
        """
        n = len(data)
        if n < 12:
            raise ValueError("RTP packet shorter than 12 bytes")
        b0 = data[0]
        b1 = data[1]
        seq, ts = _seq_ts.unpack_from(data, 2)
        off = 12 + 4 * (b0 & 0x0F)
        audio_level = b""
        if b0 & 0x10:
            if n < off + 4:
                raise ValueError("RTP header extension truncated")
            profile, words = _ext_hdr.unpack_from(data, off)
            start = off + 4
            off = start + 4 * words
            if off > n:
                raise ValueError("RTP header extension longer than packet")
            al_id = self.ext_ids.audio_level
            if al_id and profile == 0xBEDE:
                i = start
                while i < off:
                    h = data[i]
                    if h == 0:
                        i += 1
                        continue
                    ext_id = h >> 4
                    length = (h & 0x0F) + 1
                    if ext_id == 15:
                        break
                    if ext_id == al_id:
                        audio_level = data[i + 1 : i + 2]
                        break
                    i += 1 + length
        elif off > n:
            raise ValueError("RTP CSRC list longer than packet")
        if off > 0xFFFF:  # no UDP datagram has such a header; the native cache's limit
            raise ValueError("RTP header longer than 65535 bytes")
        payload = data[off:]
        self.level = (audio_level[0] & 0x7F) if audio_level else -1
        keyframe = self.video and is_keyframe_start(self.codec, payload)
        out: list[tuple[OutputStream, bytes]] = []
        if self.muted:
            return out, keyframe
        ast = b""
        for o in self.outputs:
            if not o.active:
                continue
            if o.waiting_keyframe:
                if not keyframe:
                    continue
                o.waiting_keyframe = False
            if o.params.abs_send_time_ext_id and not ast:
                ast = abs_send_time(now)
            rw = o._vp8_rewriter
            pkt = o.build(
                b0, b1, seq, ts, audio_level, ast, payload if rw is None else rw.rewrite(payload)
            )
            if pkt is not None:
                out.append((o, pkt))
        return out, keyframe

    def pause_outputs(self, *, rebase_ts: bool = False) -> None:
        for o in self.outputs:
            o.pause(video=self.video, rebase_ts=rebase_ts)
