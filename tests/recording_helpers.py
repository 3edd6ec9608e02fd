"""Recording tests: gated test tracks, a lossy reordering send path for an aiortc
publisher, and ffprobe/ffmpeg checks of the files."""

from __future__ import annotations

import asyncio
import json
import random
import struct
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from media import ColourTrack, ToneTrack

__all__ = [
    "GatedColour",
    "GatedTone",
    "LossySender",
    "decode_errors",
    "probe",
    "recording_event",
]


class GatedColour(ColourTrack):
    """A ColourTrack whose first frame waits for ``gate`` (so the send path can be
    wrapped before any packet leaves)."""

    def __init__(self, colour: tuple[int, int, int], gate: asyncio.Event) -> None:
        super().__init__(colour)
        self.gate = gate

    async def recv(self):  # type: ignore[no-untyped-def]
        await self.gate.wait()
        return await super().recv()


class GatedTone(ToneTrack):
    def __init__(self, gate: asyncio.Event) -> None:
        super().__init__()
        self.gate = gate

    async def recv(self):  # type: ignore[no-untyped-def]
        await self.gate.wait()
        return await super().recv()


class LossySender:
    """Wraps an aiortc publisher's ``RTCDtlsTransport._send_rtp``: drops a share of the
    packets and swaps some neighbours; records the RTP timestamps of each media SSRC.

    The first :attr:`SPARED` packets of each kind sent while recording pass untouched: a
    recording starts at a keyframe, so a lost first keyframe would move the start to the
    next one (after a PLI, slower on a busy machine) and the file would be shorter than
    what was sent for a reason that is not the one under test."""

    SPARED = 40

    def __init__(self, pc: Any, *, loss: float, reorder: float, seed: int = 15) -> None:
        senders = [t.sender for t in pc.getTransceivers()]
        self.kinds = {int(s._ssrc): s.track.kind for s in senders}  # private: canary-tested
        transport = senders[0].transport
        self._send: Callable[[bytes], Awaitable[None]] = transport._send_rtp
        transport._send_rtp = self._wrapped
        self._rng = random.Random(seed)
        self.loss, self.reorder = loss, reorder
        self._held: bytes | None = None
        self.recording = False
        self.sent: dict[str, list[int]] = {"audio": [], "video": []}  # ts while recording
        self.dropped = 0
        self.swapped = 0

    async def _wrapped(self, data: bytes) -> None:
        rtcp = 192 <= data[1] <= 223  # aiortc sends RTCP (e.g. an 8-byte BYE) here too
        kind = None if rtcp else self.kinds.get(struct.unpack_from("!I", data, 8)[0])
        if kind is None:  # RTCP and retransmissions (RTX) pass untouched
            await self._send(data)
            return
        if self.recording:
            self.sent[kind].append(struct.unpack_from("!I", data, 4)[0])
            if len(self.sent[kind]) <= self.SPARED:
                await self._send(data)
                return
        if self._rng.random() < self.loss:
            self.dropped += 1
            return
        if self._held is None and self._rng.random() < self.reorder:
            self._held = data
            self.swapped += 1
            return
        await self._send(data)
        if self._held is not None:
            held, self._held = self._held, None
            await self._send(held)

    def sent_seconds(self, kind: str, clock_rate: int, frame_seconds: float) -> float:
        ts = self.sent[kind]
        first = ts[0]
        last = max(((t - first) & 0xFFFFFFFF) for t in ts)
        return last / clock_rate + frame_seconds


async def recording_event(client: Any, n: int, timeout: float = 10.0) -> dict[str, Any]:
    """The ``n``-th ``recording`` message ``client`` got (waiting for it if need be)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        events = [e for e in client.events if e.get("type") == "recording"]
        if len(events) >= n:
            return dict(events[n - 1])
        if loop.time() > deadline:
            raise AssertionError(f"{client.name} got {len(events)} recording messages, not {n}")
        await asyncio.sleep(0.05)


def probe(path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(done.stdout))


def decode_errors(path: Path) -> str:
    """ffmpeg's complaints decoding the whole file (empty: clean)."""
    done = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
    )
    return done.stderr + ("" if done.returncode == 0 else f"[exit {done.returncode}]")


def write_vp8_file(path: Path, colour: tuple[int, int, int], seconds: float) -> int:
    """A WebM of solid ``colour`` (VP8 encoded here, in the test); returns frames."""
    import fractions

    import av
    import numpy as np

    from mediaserver.recording.assemble import vp8_dimensions
    from mediaserver.recording.ebml import MatroskaWriter, TrackSpec

    enc = av.CodecContext.create("libvpx", "w")
    enc.width, enc.height, enc.pix_fmt = 160, 120, "yuv420p"
    enc.time_base = fractions.Fraction(1, 30)
    packets: list[bytes] = []
    rgb = np.zeros((120, 160, 3), np.uint8)
    rgb[:, :] = colour
    for i in range(round(seconds * 30)):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        packets += [bytes(p) for p in enc.encode(frame)]
    packets += [bytes(p) for p in enc.encode(None)]
    width, height = vp8_dimensions(packets[0]) or (0, 0)
    with path.open("wb") as fh:
        writer = MatroskaWriter(
            fh, TrackSpec("V_VP8", True, width, height), doctype="webm", app="t"
        )
        for i, data in enumerate(packets):
            writer.write(i * 1000 // 30, data, not data[0] & 1)
        writer.close(len(packets) * 1000 / 30)
    return len(packets)


def write_opus_file(path: Path, seconds: float, freq: float = 440.0) -> None:
    """A WebM of a sine tone (Opus encoded here, in the test)."""
    import math

    import av
    import numpy as np

    from mediaserver.recording.ebml import MatroskaWriter, TrackSpec, opus_head

    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format = 48000, "stereo", "s16"
    packets: list[bytes] = []
    for i in range(round(seconds * 50)):
        t = (np.arange(960) + i * 960) / 48000
        tone = (np.sin(2 * math.pi * freq * t) * 8000).astype(np.int16)
        pcm = np.repeat(tone, 2).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="stereo")
        frame.sample_rate, frame.pts = 48000, i * 960
        packets += [bytes(p) for p in enc.encode(frame)]
    with path.open("wb") as fh:
        spec = TrackSpec("A_OPUS", False, codec_private=opus_head())
        writer = MatroskaWriter(fh, spec, doctype="webm", app="t")
        for i, data in enumerate(packets):
            writer.write(i * 20, data, True)
        writer.close(len(packets) * 20.0)
