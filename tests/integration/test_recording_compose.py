"""`mediaserver recording compose`: a recording's files (two cameras, one microphone,
with start offsets) become one MP4 with the cameras side by side and the sound mixed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from recording_helpers import decode_errors, probe, write_opus_file, write_vp8_file
from server_helpers import ROOT

pytestmark = [pytest.mark.integration]

RED, BLUE = (220, 30, 30), (40, 60, 220)


def test_compose_writes_a_grid_with_mixed_audio(tmp_path: Path) -> None:
    folder = tmp_path / "RE0123456789abcdef"
    folder.mkdir()
    write_vp8_file(folder / "a-video.webm", RED, 3.0)
    write_vp8_file(folder / "b-video.webm", BLUE, 2.0)
    write_opus_file(folder / "a-audio.webm", 3.0)
    tracks = [
        {
            "kind": "video",
            "file": "a-video.webm",
            "start_offset_seconds": 0.0,
            "duration_seconds": 3.0,
        },
        {
            "kind": "video",
            "file": "b-video.webm",
            "start_offset_seconds": 1.0,
            "duration_seconds": 2.0,
        },
        {
            "kind": "audio",
            "file": "a-audio.webm",
            "start_offset_seconds": 0.0,
            "duration_seconds": 3.0,
        },
    ]
    (folder / "manifest.json").write_text(json.dumps({"id": folder.name, "tracks": tracks}))
    out = tmp_path / "out.mp4"
    done = subprocess.run(
        [sys.executable, "-m", "mediaserver", "recording", "compose", str(folder), str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    info = probe(out)
    assert sorted(s["codec_name"] for s in info["streams"]) == ["aac", "h264"]
    assert abs(float(info["format"]["duration"]) - 3.0) <= 0.1
    assert decode_errors(out) == ""
    with av.open(str(out)) as c:
        frames = {round(f.time, 2): f.to_ndarray(format="rgb24") for f in c.decode(video=0)}
    early, late = (
        frames[min(frames, key=lambda t: abs(t - 0.5))],
        frames[min(frames, key=lambda t: abs(t - 2.0))],
    )
    left, right = late[:, :640].reshape(-1, 3).mean(0), late[:, 640:].reshape(-1, 3).mean(0)
    assert left[0] > 150 and left[2] < 100  # red camera on the left
    assert right[2] > 150 and right[0] < 100  # blue camera on the right, from 1 s on
    assert early[:, 640:].mean() < 20  # not yet there at 0.5 s
    with av.open(str(out)) as c:
        sound = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    assert np.sqrt(np.mean(sound**2)) > 0.05  # the tone is in the mix


def test_compose_names_a_missing_recording(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mediaserver",
            "recording",
            "compose",
            str(tmp_path),
            str(tmp_path / "o.mp4"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 1 and "manifest.json" in done.stderr
