"""A recording on a disk that fills up (a small tmpfs the test mounts): the recording
stops cleanly, everyone is told, what was written plays, and the meeting goes on."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from media import COLOURS, ColourTrack, ToneTrack, receive_frames
from recording_helpers import decode_errors, recording_event
from server_helpers import join_room, make_config, start_server

from mediaserver.config import RecordingConfig

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs (root)"),
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg"),
]


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


async def test_disk_full_stops_the_recording_and_the_meeting_goes_on(tmp_path, clients):
    with small_tmpfs(tmp_path / "disk", "256k") as disk:
        base = make_config()
        config = dataclasses.replace(
            base, recording=RecordingConfig(directory=str(disk), default_policy="host")
        )
        server = await start_server(config)
        try:
            host, member = server.client("Host"), server.client("Member")
            clients += [host, member]
            await host.connect()
            await join_room(host, "full", role="host")
            await member.connect()
            await join_room(member, "full")
            await host.request({"type": "set_recording", "active": True})
            started = await recording_event(host, 1)
            await host.publish([ToneTrack(), ColourTrack(COLOURS[1])])
            stopped = await recording_event(host, 2, timeout=60)
            assert stopped["active"] is False and stopped["reason"] == "disk_full"
            assert (await recording_event(member, 2))["reason"] == "disk_full"
            # the meeting goes on: the member still gets the host's media
            tracks = await member.wait_for_tracks(2, timeout=20)
            video = next(t for t in tracks if t.kind == "video")
            await receive_frames(video.track, 30, timeout=10)
            assert server.rooms.rooms["full"].recording is None
            metrics = server.metrics
            assert metrics.recordings._value.get() == 0
            assert metrics.recordings_stopped.labels("disk_full")._value.get() == 1
            assert metrics.recorded_frames.labels("video")._value.get() > 0
            folder = disk / started["recording_id"]
            manifest = json.loads((folder / "manifest.json").read_text())
            assert manifest["state"] == "ready" and manifest["reason"] == "disk_full"
            files = sorted(folder.glob("*.webm"))
            assert files, "nothing was recorded before the disk filled up"
            for path in files:
                assert decode_errors(path) == "", path.name
        finally:
            await server.runner.cleanup()
