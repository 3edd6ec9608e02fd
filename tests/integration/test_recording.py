"""Recording without transcoding, end to end: a real aiortc publisher (its VP8 and Opus
encoded here, in the test) sends through a lossy, reordering path to a real server
process that records it; the files are checked with ffprobe and ffmpeg."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from media import COLOURS
from recording_helpers import (
    GatedColour,
    GatedTone,
    LossySender,
    decode_errors,
    probe,
    recording_event,
)
from server_helpers import (
    ADHOC_ENV,
    clean_env,
    free_port,
    join_room,
    stop_process,
    wait_healthy,
)

from mediaserver.client.sdk import MeetingClient
from mediaserver.recording.session import CHECKPOINT_SECONDS

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not Path("/usr/bin/ffprobe").exists(), reason="needs ffmpeg (scripts/ensure-system-deps.sh)"
    ),
]
GUARD = Path(__file__).resolve().parents[1] / "codec_guard.py"


class Node:
    """A server process started through the codec guard, recording into ``recordings``."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.recordings = tmp / "recordings"
        self.codec_log = tmp / "codecs.log"
        self.config = tmp / "config.toml"
        self.config.write_text(
            f"""
[server]
port = {self.port}
[rtc]
ice_addresses = ["127.0.0.1"]
[state]
data_dir = "{tmp / "data"}"
[recording]
directory = "{self.recordings}"
default_policy = "host"
"""
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        env = clean_env(ADHOC_ENV, {"CODEC_GUARD_LOG": str(self.codec_log)})
        with (self.tmp / "server.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(GUARD), "serve", "--config", str(self.config)],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=env,
            )
        await wait_healthy(self.url, self.proc)

    def client(self, name: str) -> MeetingClient:
        return MeetingClient(
            f"ws://127.0.0.1:{self.port}/ws", name=name, ice_addresses=["127.0.0.1"]
        )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    n = Node(tmp_path)
    await n.start()
    try:
        yield n
    finally:
        n.stop()


async def record_lossy_publisher(
    node: Node, clients: list[MeetingClient], seconds: float, video_codec: str = "VP8"
) -> tuple[MeetingClient, MeetingClient, LossySender, dict]:
    """A host starts recording, then publishes through a lossy path for ``seconds``."""
    host, member = node.client("Host"), node.client("Member")
    clients += [host, member]
    await host.connect()
    joined = await join_room(host, "rec", role="host")
    assert joined["recording"] == {"active": False, "policy": "host", "recording_id": None}
    await member.connect()
    await join_room(member, "rec")
    await host.request({"type": "set_recording", "active": True})
    started = await recording_event(member, 1)
    assert started["active"] is True and started["by"] == host.participant_id
    gate = asyncio.Event()
    await host.publish([GatedTone(gate), GatedColour(COLOURS[0], gate)], video_codec=video_codec)
    assert host.publisher is not None
    lossy = LossySender(host.publisher, loss=0.03, reorder=0.05)
    lossy.recording = True
    gate.set()
    await member.wait_for_tracks(2, timeout=20)
    await asyncio.sleep(seconds)
    return host, member, lossy, started


@pytest.mark.parametrize(
    ("video_codec", "video_name", "suffix"),
    [
        ("VP8", "vp8", ".webm"),  # WebM
        ("H264", "h264", ".mkv"),  # Matroska (WebM has no H264)
    ],
)
async def test_lossy_publisher_is_recorded_into_playable_synchronised_files(
    node, clients, video_codec, video_name, suffix
):
    host, member, lossy, started = await record_lossy_publisher(node, clients, 5.0, video_codec)
    lossy.recording = False
    await host.request({"type": "set_recording", "active": False})
    stopped = await recording_event(member, 2)
    assert stopped == {
        "type": "recording",
        "active": False,
        "recording_id": started["recording_id"],
        "reason": "stopped_by_host",
    }
    assert lossy.dropped > 0 and lossy.swapped > 0
    folder = node.recordings / started["recording_id"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["state"] == "ready"
    tracks = {t["kind"]: t for t in manifest["tracks"]}
    assert set(tracks) == {"audio", "video"}
    assert {t["participant_id"] for t in tracks.values()} == {host.participant_id}
    assert {t["name"] for t in tracks.values()} == {"Host"}
    assert manifest["participants"] == [{"id": host.participant_id, "name": "Host", "role": "host"}]
    sent = {
        "audio": lossy.sent_seconds("audio", 48000, 0.02),
        "video": lossy.sent_seconds("video", 90000, 1 / 30),
    }
    assert tracks["video"]["file"].endswith(suffix)
    for kind, codec in (("audio", "opus"), ("video", video_name)):
        path = folder / tracks[kind]["file"]
        info = probe(path)
        assert [s["codec_name"] for s in info["streams"]] == [codec]
        duration = float(info["format"]["duration"])
        assert abs(duration - sent[kind]) <= 0.1, (kind, duration, sent[kind])
        assert abs(tracks[kind]["duration_seconds"] - duration) <= 0.05
        assert decode_errors(path) == "", kind
    assert info["streams"][0]["width"] == 160 and info["streams"][0]["height"] == 120
    offsets = [tracks[k]["start_offset_seconds"] for k in ("audio", "video")]
    assert abs(offsets[0] - offsets[1]) <= 0.04, offsets
    # the server process created no encoder or decoder
    assert node.codec_log.exists() and node.codec_log.read_text() == ""


async def test_killed_node_leaves_playable_files_marked_interrupted(node, clients):
    _, _, lossy, started = await record_lossy_publisher(node, clients, 3.0)
    folder = node.recordings / started["recording_id"]
    node.kill()
    lossy.recording = False
    for c in clients:
        await c.close()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["state"] == "recording"  # nobody finished it
    files = sorted(folder.glob("*.webm"))
    assert len(files) == 2
    for path in files:
        assert decode_errors(path) == "", path.name
        kind = "audio" if "-audio-" in path.name else "video"
        clock, frame = (48000, 0.02) if kind == "audio" else (90000, 1 / 30)
        sent = lossy.sent_seconds(kind, clock, frame)
        played = await asyncio.to_thread(_played_seconds, path)
        assert sent - 0.5 <= played <= sent + 0.1, (kind, played, sent)
    await node.start()  # the same node comes back
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["state"] == "interrupted"
    # the manifest describes what was written (as of its last checkpoint before the kill)
    assert sorted(t["file"] for t in manifest["tracks"]) == [p.name for p in files]
    assert [p["name"] for p in manifest["participants"]] == ["Host"]
    for track in manifest["tracks"]:
        played = await asyncio.to_thread(_played_seconds, folder / track["file"])
        assert played - CHECKPOINT_SECONDS - 0.5 <= track["duration_seconds"] <= played + 0.05
        assert track["start_offset_seconds"] is not None


def _played_seconds(path: Path) -> float:
    """The timestamp of the last packet ffprobe can read, plus one frame."""
    done = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "packet=pts_time,duration_time",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [r.split(",") for r in done.stdout.split() if r]
    last = rows[-1]
    return float(last[0]) + (float(last[1]) if len(last) > 1 and last[1] not in ("", "N/A") else 0)
