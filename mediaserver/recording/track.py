"""One recorded track: RTP packets from the publication → in-order packets → whole frames
→ timed frames for the writer thread. Pure apart from the two callbacks it is given."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..h264 import sps_size
from ..telemetry import get_logger
from .assemble import Frame, FrameAssembler, OpusAssembler, Vp8Assembler, vp8_dimensions
from .ebml import TrackSpec, opus_head
from .h264 import H264Assembler, avcc_record
from .reorder import ReorderBuffer
from .rtp import RtpPacket, SeqUnwrapper, TsUnwrapper, parse_rtp
from .writer import CloseTrack, OpenTrack, WriteFrame

__all__ = ["CODECS", "ParticipantClock", "TrackRecorder"]


@dataclass(frozen=True, slots=True)
class _Codec:
    matroska_id: str
    doctype: str
    extension: str
    reorder: int
    assembler: Callable[[], FrameAssembler]


#: Codecs the recorder can mux without decoding (by their SDP name, upper case).
CODECS: dict[str, _Codec] = {
    "VP8": _Codec("V_VP8", "webm", "webm", 128, Vp8Assembler),
    "OPUS": _Codec("A_OPUS", "webm", "webm", 16, OpusAssembler),
    "H264": _Codec("V_MPEG4/ISO/AVC", "matroska", "mkv", 128, H264Assembler),
}


class ParticipantClock:
    """Maps a publisher's NTP time (from its sender reports) to the local clock, the same
    mapping for all its tracks so they stay in sync as the publisher meant them."""

    def __init__(self) -> None:
        self.offset: float | None = None  # local time - publisher NTP seconds

    def on_sender_report(self, ntp_seconds: float, arrival: float) -> None:
        if self.offset is None:
            self.offset = arrival - ntp_seconds


class TrackRecorder:
    def __init__(
        self,
        *,
        key: str,
        codec: str,
        clock_rate: int,
        path: Path,
        clock: ParticipantClock,
        submit: Callable[[OpenTrack | WriteFrame | CloseTrack], bool],
        request_keyframe: Callable[[], None],
    ) -> None:
        spec = CODECS.get(codec.upper())
        if spec is None:
            raise ValueError(f"cannot record codec {codec!r} (recordable: {', '.join(CODECS)})")
        self.key = key
        self.codec = spec
        self.clock_rate = clock_rate
        self.path = path
        self.clock = clock
        self._submit = submit
        self._request_keyframe = request_keyframe
        self._assembler = spec.assembler()
        self._reorder: ReorderBuffer[RtpPacket] = ReorderBuffer(spec.reorder)
        self._seq = SeqUnwrapper()
        self._ts = TsUnwrapper()
        self._ssrc: int | None = None
        self._opened = False
        self.closed = False
        self._now = 0.0
        # timing: frame timestamps relative to the first written frame
        self._base_ts: int | None = None
        self._base_raw = 0
        self.first_arrival: float | None = None
        self._sr: tuple[float, int] | None = None  # (NTP seconds, RTP timestamp)
        self._last_ts: int | None = None
        self._frame_ticks = 0
        # accounting for the manifest and metrics
        self.frames = 0
        self.dropped_queue = 0
        self.invalid = 0

    @property
    def assembly_dropped(self) -> int:
        return self._assembler.dropped_frames

    @property
    def video(self) -> bool:
        return self._assembler.video

    def on_rtp(self, data: bytes, now: float) -> None:
        """Called on the forwarding hot path: never raises (a recorder bug must not stop
        forwarding); a failing track stops recording and is logged once."""
        if self.closed:
            return
        try:
            self._on_rtp(data, now)
        except Exception:
            self.closed = True
            get_logger().exception("recording a track failed; it is no longer recorded")

    def _on_rtp(self, data: bytes, now: float) -> None:
        self._now = now
        try:
            packet = parse_rtp(data)
        except ValueError:
            self.invalid += 1
            return
        if packet.ssrc != self._ssrc:
            if self._ssrc is not None:
                self._restart(now)
            self._ssrc = packet.ssrc
        for released in self._reorder.push(self._seq.unwrap(packet.seq), packet):
            self._on_packet(released.item, released.gap_before, now)

    def _restart(self, now: float) -> None:
        """A new SSRC (the publisher reconnected): new sequence and timestamp spaces;
        timestamps continue from the local time elapsed."""
        for released in self._reorder.flush():
            self._on_packet(released.item, released.gap_before, now)
        self._reorder = ReorderBuffer(self.codec.reorder)
        self._seq = SeqUnwrapper()
        self._assembler.resync()
        self._ts = TsUnwrapper()
        if self._base_ts is not None and self.first_arrival is not None:
            self._pending_rebase = round((now - self.first_arrival) * self.clock_rate)
        self._sr = None

    _pending_rebase: int | None = None

    def _on_packet(self, packet: RtpPacket, gap: bool, now: float) -> None:
        ts = self._ts.unwrap(packet.timestamp)
        if self._pending_rebase is not None and self._base_ts is not None:
            self._base_ts = ts - self._pending_rebase
            self._pending_rebase = None
        frame = self._assembler.push(ts, packet.payload, packet.marker, gap)
        if frame is not None:
            self._write(frame, now)
        elif self.video and self._assembler.need_keyframe:
            self._request_keyframe()

    def _write(self, frame: Frame, now: float) -> None:
        if not self._opened:
            if not self._open(frame, now):
                return
        assert self._base_ts is not None
        ticks = frame.timestamp - self._base_ts
        if self._last_ts is not None and frame.timestamp > self._last_ts:
            self._frame_ticks = frame.timestamp - self._last_ts
        self._last_ts = max(frame.timestamp, self._last_ts or frame.timestamp)
        ms = (ticks * 1000) // self.clock_rate
        if self._submit(WriteFrame(self.key, ms, frame.data, frame.keyframe)):
            self.frames += 1
        else:
            self.dropped_queue += 1
            if self.video:  # what follows refers to the frame we lost
                self._assembler.resync()
                self._request_keyframe()

    def _video_spec(self, frame: Frame) -> TrackSpec | None:
        if not frame.keyframe:
            return None
        asm = self._assembler
        if isinstance(asm, H264Assembler):
            if asm.sps is None or asm.pps is None:
                return None
            size = sps_size(asm.sps)
            if size is None:
                return None
            width, height = size
            private = avcc_record(asm.sps, asm.pps)
            return TrackSpec(self.codec.matroska_id, True, width, height, codec_private=private)
        dims = vp8_dimensions(frame.data)
        if dims is None:
            return None
        return TrackSpec(self.codec.matroska_id, True, width=dims[0], height=dims[1])

    def _open(self, frame: Frame, now: float) -> bool:
        if self.video:
            video_spec = self._video_spec(frame)
            if video_spec is None:
                return False
            spec = video_spec
        else:
            spec = TrackSpec(self.codec.matroska_id, False, codec_private=opus_head())
        if not self._submit(OpenTrack(self.key, self.path, spec, self.codec.doctype)):
            self.dropped_queue += 1
            return False
        self._opened = True
        self._base_ts = frame.timestamp
        self._base_raw = frame.timestamp & 0xFFFFFFFF
        self.first_arrival = now
        return True

    def on_sender_report(self, ntp: int, rtp_ts: int, now: float) -> None:
        ntp_seconds = ntp / 2**32
        self.clock.on_sender_report(ntp_seconds, now)
        self._sr = (ntp_seconds, rtp_ts)

    def start_time(self) -> float | None:
        """Local time of the first written frame: through the publisher's sender reports
        when there were some (lip sync), else its arrival."""
        if self._base_ts is None:
            return None
        if self._sr is not None and self.clock.offset is not None:
            ntp_seconds, sr_rtp = self._sr
            delta = (self._base_raw - sr_rtp) & 0xFFFFFFFF
            if delta >= 0x80000000:
                delta -= 0x100000000
            return ntp_seconds + delta / self.clock_rate + self.clock.offset
        return self.first_arrival

    def duration_ms(self) -> float:
        if self._base_ts is None or self._last_ts is None:
            return 0.0
        ticks = self._last_ts - self._base_ts + self._frame_ticks
        return ticks * 1000 / self.clock_rate

    def close(self) -> None:
        """Write what the reorder buffer still holds and close the file."""
        if self.closed:
            return
        for released in self._reorder.flush():
            self._on_packet(released.item, released.gap_before, self._now)
        self.closed = True
        if self._opened:
            self._submit(CloseTrack(self.key, self.duration_ms()))

    def describe(self, started: float) -> dict[str, Any]:
        start = self.start_time()
        return {
            "file": self.path.name,
            "codec": self.codec.matroska_id,
            "start_offset_seconds": None if start is None else round(start - started, 4),
            "duration_seconds": round(self.duration_ms() / 1000, 4),
            "frames": self.frames,
            "dropped_frames": self._assembler.dropped_frames + self.dropped_queue,
            "lost_packets": self._reorder.lost,
        }
