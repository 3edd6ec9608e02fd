"""Test media: solid-colour video and tone audio tracks, and colour checks on receipt."""

from __future__ import annotations

import asyncio
import fractions
import math
import time

import numpy as np
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack
from av import AudioFrame, VideoFrame

COLOURS = [(220, 30, 30), (30, 200, 40), (40, 60, 220), (230, 220, 40), (200, 40, 210)]


class ColourTrack(VideoStreamTrack):
    """Solid colour frames, 160x120 at 30 fps: each publisher gets its own colour."""

    def __init__(self, colour: tuple[int, int, int], width: int = 160, height: int = 120):
        super().__init__()
        arr = np.zeros((height, width, 3), dtype=np.uint8)
        arr[:, :] = colour
        self._arr = arr

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame.from_ndarray(self._arr, format="rgb24")
        frame.pts = pts
        frame.time_base = time_base
        return frame


class ToneTrack(AudioStreamTrack):
    """A sine tone (20 ms frames, 48 kHz mono)."""

    def __init__(self, freq: float = 440.0, amplitude: int = 8000):
        super().__init__()
        self._freq = freq
        self._amplitude = amplitude
        self._n = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        samples = 960
        if self._start is None:
            self._start = time.time()
        wait = self._start + self._n * samples / 48000 - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        t = (np.arange(samples) + self._n * samples) / 48000
        data = (np.sin(2 * math.pi * self._freq * t) * self._amplitude).astype(np.int16)
        frame = AudioFrame.from_ndarray(data.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = self._n * samples
        frame.time_base = fractions.Fraction(1, 48000)
        self._n += 1
        return frame


def mean_colour(frame: VideoFrame) -> tuple[float, float, float]:
    arr = frame.to_ndarray(format="rgb24")
    m = arr.reshape(-1, 3).mean(axis=0)
    return (float(m[0]), float(m[1]), float(m[2]))


def closest_colour(rgb: tuple[float, float, float]) -> int:
    dists = [sum((a - b) ** 2 for a, b in zip(rgb, c, strict=True)) for c in COLOURS]
    return int(np.argmin(dists))


async def receive_frames(track, count: int, timeout: float = 10.0) -> list:
    """Receive ``count`` decoded frames (raises on timeout or track end)."""
    frames = []

    async def _run() -> None:
        while len(frames) < count:
            frames.append(await track.recv())

    await asyncio.wait_for(_run(), timeout)
    return frames


async def track_ends(track, timeout: float = 10.0) -> bool:
    async def _run() -> None:
        while True:
            await track.recv()

    try:
        await asyncio.wait_for(_run(), timeout)
    except MediaStreamError:
        return True
    except TimeoutError:
        return False
    return False
