"""The recorder's pure parts: RTP parsing, the reorder buffer, VP8/Opus frame assembly,
the Matroska writer (checked with ffprobe/ffmpeg, including a truncated copy)."""

from __future__ import annotations

import fractions
import io
import shutil
import struct
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from recording_helpers import decode_errors

from mediaserver.recording.assemble import OpusAssembler, Vp8Assembler, vp8_dimensions
from mediaserver.recording.ebml import MatroskaWriter, TrackSpec, opus_head
from mediaserver.recording.reorder import ReorderBuffer
from mediaserver.recording.rtp import SeqUnwrapper, TsUnwrapper, parse_rtp
from mediaserver.recording.track import ParticipantClock, TrackRecorder

ffmpeg_missing = pytest.mark.skipif(shutil.which("ffprobe") is None, reason="needs ffmpeg")


def rtp(seq: int, ts: int, payload: bytes, *, marker: bool = False, ext: bool = False) -> bytes:
    b0 = 0x80 | (0x10 if ext else 0)
    head = struct.pack("!BBHII", b0, (0x80 if marker else 0) | 96, seq, ts, 1234)
    if ext:
        head += b"\xbe\xde\x00\x01" + b"\x10\xff\x00\x00"
    return head + payload


def test_parse_rtp_skips_extensions_and_padding() -> None:
    p = parse_rtp(rtp(7, 9000, b"abc", marker=True, ext=True))
    assert (p.seq, p.timestamp, p.marker, p.payload) == (7, 9000, True, b"abc")
    padded = bytearray(rtp(1, 2, b"xy\x00\x00\x03"))
    padded[0] |= 0x20
    assert parse_rtp(bytes(padded)).payload == b"xy"
    with pytest.raises(ValueError, match="shorter than its header"):
        parse_rtp(b"\x80\x60")
    with pytest.raises(ValueError, match="version 0"):
        parse_rtp(bytes(12))


def test_unwrappers_cross_the_wrap() -> None:
    seq = SeqUnwrapper()
    assert [seq.unwrap(s) for s in (65534, 65535, 0, 1, 65535)] == [
        65534,
        65535,
        65536,
        65537,
        65535,
    ]
    ts = TsUnwrapper()
    assert ts.unwrap(0xFFFFFF00) == 0xFFFFFF00
    assert ts.unwrap(0x100) == 0x100000100


def test_reorder_buffer_sorts_and_gives_up_on_a_lost_packet() -> None:
    buf: ReorderBuffer[str] = ReorderBuffer(3)
    assert [r.seq for r in buf.push(10, "a")] == [10]
    assert buf.push(12, "c") == []  # 11 missing: held
    out = buf.push(11, "b")  # reordered: released in order
    assert [(r.seq, r.gap_before) for r in out] == [(11, False), (12, False)]
    assert buf.push(11, "dup") == [] and buf.late == 1
    # 13 lost: after 3 later packets are held it is given up
    assert buf.push(14, "e") == [] and buf.push(15, "f") == []
    out = buf.push(16, "g")
    assert [(r.seq, r.gap_before) for r in out] == [(14, True), (15, False), (16, False)]
    assert buf.lost == 1
    assert buf.push(18, "i") == []
    assert [(r.seq, r.gap_before) for r in buf.flush()] == [(18, True)]


def vp8_packets(
    frame: bytes, seq: int, ts: int, size: int = 5
) -> list[tuple[int, int, bytes, bool]]:
    chunks = [frame[i : i + size] for i in range(0, len(frame), size)]
    out = []
    for i, chunk in enumerate(chunks):
        # extended descriptor with a 15-bit picture id, S bit on the first packet
        desc = bytes([0x90 if i == 0 else 0x80, 0x80, 0x80, 0x01])
        out.append((seq + i, ts, desc + chunk, i == len(chunks) - 1))
    return out


KEY = b"\x10\x02\x00\x9d\x01\x2a\xa0\x00\x78\x00" + bytes(range(20))  # 160x120 keyframe
INTER = b"\x11" + bytes(range(1, 24))


def test_vp8_frames_are_reassembled_and_start_at_a_keyframe() -> None:
    asm = Vp8Assembler()
    frames = []
    seq = 0
    for n, frame in enumerate([INTER, KEY, INTER, INTER]):
        for s, ts, payload, marker in vp8_packets(frame, seq, n * 3000):
            got = asm.push(ts, payload, marker, gap=False)
            if got is not None:
                frames.append(got)
            seq = s + 1
    assert [f.data for f in frames] == [KEY, INTER, INTER]  # the first inter frame waits
    assert frames[0].keyframe and not frames[1].keyframe
    assert vp8_dimensions(frames[0].data) == (160, 120)


def test_vp8_a_lost_packet_drops_frames_until_the_next_keyframe() -> None:
    asm = Vp8Assembler()
    out = []
    frames = [KEY, INTER, INTER, KEY, INTER]
    seq = 0
    for n, frame in enumerate(frames):
        packets = vp8_packets(frame, seq, n * 3000)
        seq += len(packets)
        for i, (_, ts, payload, marker) in enumerate(packets):
            if n == 1 and i == 2:
                continue  # lost in the second frame
            got = asm.push(ts, payload, marker, gap=(n == 1 and i == 3))
            if got is not None:
                out.append(got.timestamp)
    assert out == [0, 9000, 12000]
    assert asm.dropped_frames == 2


def test_vp8_a_frame_without_its_marker_is_dropped() -> None:
    asm = Vp8Assembler()
    packets = vp8_packets(KEY, 0, 0)
    for _, ts, payload, _marker in packets[:-1]:
        assert asm.push(ts, payload, False, gap=False) is None
    packets = vp8_packets(KEY, 10, 3000)
    got = [asm.push(ts, p, m, gap=False) for _, ts, p, m in packets]
    assert got[-1] is not None and got[-1].timestamp == 3000
    assert asm.dropped_frames == 1


def test_opus_payloads_are_frames() -> None:
    asm = OpusAssembler()
    assert asm.push(960, b"\xfc\x01", False, gap=True) is not None
    assert asm.push(1920, b"", False, gap=False) is None


def encoded_vp8(count: int) -> list[bytes]:
    """Encoded here, in the test (the server never creates a codec)."""
    enc = av.CodecContext.create("libvpx", "w")
    enc.width, enc.height, enc.pix_fmt = 160, 120, "yuv420p"
    enc.time_base = fractions.Fraction(1, 30)
    out: list[bytes] = []
    for i in range(count):
        rgb = np.full((120, 160, 3), (i * 7) % 255, np.uint8)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        out += [bytes(p) for p in enc.encode(frame)]
    out += [bytes(p) for p in enc.encode(None)]
    return out


def probe(path: Path) -> str:
    return subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "format=duration:stream=codec_name,width,height,channels",
            "-of",
            "compact",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@ffmpeg_missing
def test_webm_vp8_file_probes_decodes_and_survives_truncation(tmp_path: Path) -> None:
    frames = encoded_vp8(90)
    width, height = vp8_dimensions(frames[0]) or (0, 0)
    path = tmp_path / "v.webm"
    with path.open("wb", buffering=0) as fh:
        writer = MatroskaWriter(
            fh, TrackSpec("V_VP8", True, width, height), doctype="webm", app="t"
        )
        ends = []
        for i, data in enumerate(frames):
            writer.write(i * 1000 // 30, data, not data[0] & 1)
            ends.append(fh.tell())
        writer.close(3000.0)
    info = probe(path)
    assert "codec_name=vp8|width=160|height=120" in info and "duration=3.000000" in info
    assert decode_errors(path) == ""
    # cut after frame 45, as a kill would (whole writes only): plays up to there
    cut = tmp_path / "cut.webm"
    cut.write_bytes(path.read_bytes()[: ends[44]])
    assert decode_errors(cut) == ""
    with av.open(str(cut)) as c:
        assert sum(1 for _ in c.demux(video=0) if _.size) == 45


@ffmpeg_missing
def test_webm_opus_file_has_an_opus_head(tmp_path: Path) -> None:
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format = 48000, "stereo", "s16"
    packets: list[bytes] = []
    for i in range(100):
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1920), np.int16), format="s16", layout="stereo"
        )
        frame.sample_rate, frame.pts = 48000, i * 960
        packets += [bytes(p) for p in enc.encode(frame)]
    path = tmp_path / "a.webm"
    buf = io.BytesIO()
    writer = MatroskaWriter(
        buf, TrackSpec("A_OPUS", False, codec_private=opus_head()), doctype="webm", app="t"
    )
    for i, data in enumerate(packets):
        writer.write(i * 20, data, True)
    writer.close(len(packets) * 20.0)
    path.write_bytes(buf.getvalue())
    assert opus_head() in buf.getvalue()
    info = probe(path)
    assert "codec_name=opus|channels=2" in info and "duration=2.000000" in info
    assert decode_errors(path) == ""


def test_matroska_writer_refuses_an_unknown_doctype() -> None:
    with pytest.raises(ValueError, match="webm or matroska"):
        MatroskaWriter(io.BytesIO(), TrackSpec("V_VP8", True), doctype="mp4", app="t")


def test_a_failing_track_recorder_never_raises_into_forwarding(tmp_path: Path) -> None:
    from mediaserver.recording.track import ParticipantClock, TrackRecorder

    def broken(item: object) -> bool:
        raise RuntimeError("bug")

    track = TrackRecorder(
        key="k",
        codec="opus",
        clock_rate=48000,
        path=tmp_path / "a.webm",
        clock=ParticipantClock(),
        submit=broken,
        request_keyframe=lambda: None,
    )
    track.on_rtp(rtp(1, 960, b"\xfc\x01"), 0.0)  # the reorder buffer releases it at once
    assert track.closed
    track.on_rtp(rtp(2, 1920, b"\xfc\x01"), 0.02)  # and it stays quiet


def test_unknown_codec_is_refused_with_the_recordable_ones(tmp_path: Path) -> None:
    from mediaserver.recording.track import ParticipantClock, TrackRecorder

    with pytest.raises(ValueError, match=r"cannot record codec 'G722'.*VP8, OPUS"):
        TrackRecorder(
            key="k",
            codec="G722",
            clock_rate=8000,
            path=tmp_path / "a.webm",
            clock=ParticipantClock(),
            submit=lambda item: True,
            request_keyframe=lambda: None,
        )


def test_a_full_writer_queue_drops_and_counts_and_video_waits_for_a_keyframe(
    tmp_path: Path,
) -> None:
    from mediaserver.recording.track import ParticipantClock, TrackRecorder
    from mediaserver.recording.writer import WriterThread

    writer = WriterThread("t", 16, lambda exc: None, "t")  # not started: nothing drains it
    asked: list[int] = []
    track = TrackRecorder(
        key="v",
        codec="VP8",
        clock_rate=90000,
        path=tmp_path / "v.webm",
        clock=ParticipantClock(),
        submit=writer.submit,
        request_keyframe=lambda: asked.append(1),
    )
    seq = 0
    for n, frame in enumerate([KEY] + [INTER] * 20 + [KEY, INTER]):
        for _, ts, payload, marker in vp8_packets(frame, seq, n * 3000, size=100):
            track.on_rtp(rtp(seq, ts, payload, marker=marker), n / 30)
            seq += 1
    for released in track._reorder.flush():  # what the reorder buffer still holds
        track._on_packet(released.item, released.gap_before, 1.0)
    assert track.frames == 15  # the open request and 15 frames filled the 16 places
    assert writer.dropped == track.dropped_queue > 0  # never blocked: dropped and counted
    assert asked  # and a keyframe was asked for, to resume
    assert track.describe(0.0)["dropped_frames"] >= track.dropped_queue


def _recorder(
    tmp_path: Path, codec: str, clock: ParticipantClock, items: list[object]
) -> TrackRecorder:
    def submit(item: object) -> bool:
        items.append(item)
        return True

    return TrackRecorder(
        key=codec,
        codec=codec,
        clock_rate=90000 if codec == "VP8" else 48000,
        path=tmp_path / f"{codec}.webm",
        clock=clock,
        submit=submit,
        request_keyframe=lambda: None,
    )


def test_track_recorder_puts_reordered_packets_back_in_order(tmp_path: Path) -> None:
    from mediaserver.recording.writer import WriteFrame

    items: list[object] = []
    track = _recorder(tmp_path, "VP8", ParticipantClock(), items)
    packets = vp8_packets(KEY, 100, 3000) + vp8_packets(INTER, 106, 6000)
    assert len(packets) == 11
    packets[2], packets[3] = packets[3], packets[2]  # swapped within the keyframe
    packets[8], packets[9] = packets[9], packets[8]  # and within the inter frame
    for seq, ts, payload, marker in packets:
        track.on_rtp(rtp(seq, ts, payload, marker=marker), 0.0)
    written = [i for i in items if isinstance(i, WriteFrame)]
    assert [(w.data, w.keyframe, w.ms) for w in written] == [(KEY, True, 0), (INTER, False, 33)]
    assert track.assembly_dropped == 0


def test_start_offsets_come_from_sender_reports_not_arrival(tmp_path: Path) -> None:
    """Audio and video captured at the same instant line up in the manifest even when the
    video arrives 200 ms later (pacing, a large keyframe): the offsets are placed through
    the publisher's sender reports (one NTP↔local mapping per participant)."""

    def ntp(seconds: float) -> int:
        return round(seconds * 2**32)

    clock = ParticipantClock()
    audio = _recorder(tmp_path, "OPUS", clock, [])
    video = _recorder(tmp_path, "VP8", clock, [])
    base_a, base_v = 0xFFFF0000, 123_456  # arbitrary RTP bases (audio's wraps)
    # publisher NTP 1000.0 s is local 50.0 s; the SRs arrive 10 ms after they are sent
    audio.on_sender_report(ntp(1000.0), base_a, 50.01)
    video.on_sender_report(ntp(1000.1), base_v + 9000, 50.11)
    # both captured at NTP 1000.5: audio arrives at 50.52, video at 50.72
    audio.on_rtp(rtp(1, (base_a + 24000) & 0xFFFFFFFF, b"\xfc\x01"), 50.52)
    for seq, ts, payload, marker in vp8_packets(KEY, 1, base_v + 45000):
        video.on_rtp(rtp(seq, ts, payload, marker=marker), 50.72)
    a, v = audio.start_time(), video.start_time()
    assert a == pytest.approx(50.51, abs=1e-3) and v == pytest.approx(50.51, abs=1e-3)
    offsets = [t.describe(50.0)["start_offset_seconds"] for t in (audio, video)]
    assert offsets == [pytest.approx(0.51, abs=1e-3)] * 2
    # without sender reports only the arrival is known
    late = _recorder(tmp_path, "VP8", ParticipantClock(), [])
    for seq, ts, payload, marker in vp8_packets(KEY, 1, base_v + 45000):
        late.on_rtp(rtp(seq, ts, payload, marker=marker), 50.72)
    assert late.start_time() == 50.72


def test_track_recorder_asks_for_a_keyframe_and_starts_its_file_there(tmp_path: Path) -> None:
    from mediaserver.recording.writer import OpenTrack, WriteFrame

    items: list[object] = []
    asked: list[int] = []
    track = _recorder(tmp_path, "VP8", ParticipantClock(), items)
    track._request_keyframe = lambda: asked.append(len(items))
    seq = 0
    for n, frame in enumerate([INTER, INTER, KEY, INTER]):
        for _, ts, payload, marker in vp8_packets(frame, seq, n * 3000):
            track.on_rtp(rtp(seq, ts, payload, marker=marker), n / 30)
            seq += 1
    assert asked and asked[0] == 0  # asked before anything was written
    assert isinstance(items[0], OpenTrack)  # the file starts at the keyframe
    written = [i for i in items if isinstance(i, WriteFrame)]
    assert [(w.data, w.ms) for w in written] == [(KEY, 0), (INTER, 33)]
