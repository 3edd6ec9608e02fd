"""Offline composition (`mediaserver recording compose ID OUT.mp4`): decodes a
recording's files with PyAV and writes one MP4, the video tracks in a grid and the audio
tracks mixed, lined up by the manifest's start offsets. Never runs in the server."""

from __future__ import annotations

import fractions
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from .session import MANIFEST

__all__ = ["ComposeError", "compose", "grid_shape"]

WIDTH, HEIGHT, FPS, RATE = 1280, 720, 30, 48000


class ComposeError(Exception):
    pass


def grid_shape(n: int) -> tuple[int, int]:
    """(columns, rows) for ``n`` tiles: as square as possible, wider than tall."""
    if n <= 0:
        return (1, 1)
    cols = math.ceil(math.sqrt(n))
    return cols, math.ceil(n / cols)


@dataclass
class _Video:
    offset: float
    frames: list[tuple[float, np.ndarray]]  # (time in the output, rgb tile)


def _decode_video(path: Path, offset: float, size: tuple[int, int]) -> _Video:
    frames: list[tuple[float, np.ndarray]] = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if frame.pts is None or frame.time_base is None:
                continue
            tile = frame.reformat(width=size[0], height=size[1], format="rgb24").to_ndarray()
            frames.append((offset + float(frame.pts * frame.time_base), tile))
    return _Video(offset, frames)


def _decode_audio(path: Path, offset: float, total: int) -> np.ndarray:
    """The track as float mono at 48 kHz, placed at its offset in ``total`` samples."""
    out = np.zeros(total, dtype=np.float32)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            if frame.pts is None or frame.time_base is None:
                continue
            start = round((offset + float(frame.pts * frame.time_base)) * RATE)
            for piece in resampler.resample(frame):
                data = piece.to_ndarray().reshape(-1)
                end = min(total, start + len(data))
                if 0 <= start < end:
                    out[start:end] += data[: end - start]
                start += len(data)
    return out


def compose(folder: Path, out_path: Path) -> dict[str, Any]:
    """Write ``out_path``; returns a summary (tracks, duration)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise ComposeError(f"{folder}: no readable {MANIFEST} ({exc})") from None
    tracks = [t for t in manifest.get("tracks", []) if (folder / t.get("file", "")).is_file()]
    if not tracks:
        raise ComposeError(f"{folder}: the recording has no track files")
    duration = max(
        (t.get("start_offset_seconds") or 0.0) + (t.get("duration_seconds") or 0.0) for t in tracks
    )
    videos = [t for t in tracks if t.get("kind") == "video"]
    cols, rows = grid_shape(len(videos))
    tile = (WIDTH // cols // 2 * 2, HEIGHT // rows // 2 * 2)
    decoded = [
        _decode_video(folder / t["file"], t.get("start_offset_seconds") or 0.0, tile)
        for t in videos
    ]
    total = max(1, round(duration * RATE))
    mix = np.zeros(total, dtype=np.float32)
    for t in tracks:
        if t.get("kind") == "audio":
            mix += _decode_audio(folder / t["file"], t.get("start_offset_seconds") or 0.0, total)
    np.clip(mix, -1.0, 1.0, out=mix)

    with av.open(str(out_path), "w") as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        aus = out.add_stream("aac", rate=RATE)
        aus.layout = "mono"
        canvas = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
        cursors = [0] * len(decoded)
        for n in range(max(1, round(duration * FPS))):
            now = n / FPS
            for i, video in enumerate(decoded):
                while cursors[i] + 1 < len(video.frames) and video.frames[cursors[i] + 1][0] <= now:
                    cursors[i] += 1
                x, y = (i % cols) * tile[0], (i // cols) * tile[1]
                if video.frames and video.frames[cursors[i]][0] <= now:
                    canvas[y : y + tile[1], x : x + tile[0]] = video.frames[cursors[i]][1]
                else:
                    canvas[y : y + tile[1], x : x + tile[0]] = 0
            frame = av.VideoFrame.from_ndarray(canvas, format="rgb24")
            frame.pts = n
            frame.time_base = fractions.Fraction(1, FPS)
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
        step = 1024
        for start in range(0, total, step):
            chunk = mix[start : start + step].reshape(1, -1)
            sound = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            sound.sample_rate = RATE
            sound.pts = start
            sound.time_base = fractions.Fraction(1, RATE)
            out.mux(aus.encode(sound))
        out.mux(aus.encode(None))
    return {"video_tracks": len(videos), "tracks": len(tracks), "duration_seconds": duration}
