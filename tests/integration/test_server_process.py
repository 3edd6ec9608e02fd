"""The real server process (`mediaserver serve`): health, metrics, no codecs, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from media import COLOURS, ColourTrack, ToneTrack, closest_colour, mean_colour, receive_frames
from server_helpers import (
    ADHOC_ENV,
    TOKEN_SECRET,
    clean_env,
    free_port,
    join_room,
    spawn_server,
    stop_process,
    wait_healthy,
)

from mediaserver.client.sdk import MeetingClient

pytestmark = pytest.mark.integration


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name):
            head, value = line.rsplit(" ", 1)
            if head == name:
                return float(value)
    raise AssertionError(f"metric {name} not exported")


async def test_server_process_forwards_without_codecs_and_stops_on_sigterm(tmp_path: Path):
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[server]
port = {port}
shutdown_grace_seconds = 5.0
[rtc]
ice_addresses = ["127.0.0.1"]
[state]
data_dir = "{tmp_path / "data"}"
[logging]
format = "json"
"""
    )
    stderr_path = tmp_path / "server.log"
    codec_log = tmp_path / "codecs.log"  # written by the guard inside the server process
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIASERVER_")}
    env["CODEC_GUARD_LOG"] = str(codec_log)
    env.update(ADHOC_ENV)
    guard = Path(__file__).resolve().parents[1] / "codec_guard.py"
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(guard), "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    clients: list[MeetingClient] = []
    try:
        health = await wait_healthy(url, proc)
        assert health["status"] == "ok" and health["state_backend"] == "sqlite"
        # `make run`/`make test` install the package, which compiles the native
        # forwarding path: the spawned server must be running it (issue 13).
        assert health["forwarding"]["path"] == "native", health["forwarding"]

        for i in range(2):
            c = MeetingClient(
                f"ws://127.0.0.1:{port}/ws", name=f"p{i}", ice_addresses=["127.0.0.1"]
            )
            clients.append(c)
            await c.connect()
            await join_room(c, "proc")
            await c.publish([ToneTrack(), ColourTrack(COLOURS[i])])
        for i, c in enumerate(clients):
            tracks = await c.wait_for_tracks(2, timeout=20)
            for t in tracks:
                frames = await receive_frames(t.track, 10, timeout=10)
                if t.kind == "video":
                    assert closest_colour(mean_colour(frames[-1])) == 1 - i
        await asyncio.sleep(1.2)  # let the room ticker flush counters

        async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as r:
            text = await r.text()
        assert _metric(text, 'mediaserver_forwarded_packets_total{kind="video"}') > 0
        assert _metric(text, 'mediaserver_forwarded_packets_total{kind="audio"}') > 0
        assert _metric(text, "mediaserver_participants") == 2
        # ... and the media went through it, not only past it.
        async with aiohttp.ClientSession() as s, s.get(url + "/healthz") as r:
            health = await r.json()
        forwarding = health["forwarding"]
        # what the process built at start-up is out of the garbage collector's scans
        assert health["gc_frozen_objects"] > 10_000, health
        assert forwarding["native_packets"] > 0, forwarding
        # ... and came in on the direct receive path, unprotected natively (issue 13)
        assert forwarding["direct_rtp_packets"] > 0, forwarding
        assert forwarding["unprotect"] == "native", forwarding
        # The SFU never decodes or encodes: the guard recorded no codec instance.
        assert codec_log.exists(), "the codec guard was not installed in the server"
        assert codec_log.read_text() == ""

        # SIGTERM: clients are told, the process exits in bounded time.
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        for c in clients:
            msg = await c.wait_message("room_closed", timeout=10)
            assert msg["reason"] == "server_shutdown"
        exit_code = await asyncio.get_running_loop().run_in_executor(None, proc.wait, 15)
        assert exit_code == 0
        assert time.monotonic() - started < 15
    finally:
        for c in clients:
            await c.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    # structlog JSON lines carry room and participant ids; no secrets or SDP in logs
    events = [
        json.loads(line) for line in stderr_path.read_text().splitlines() if line.startswith("{")
    ]
    starting = [e for e in events if e.get("event") == "starting"]
    assert starting and starting[0]["forwarding"] == "native"
    joined = [e for e in events if e.get("event") == "participant joined"]
    assert len(joined) == 2
    assert all(e["room"] == "proc" and e["participant"].startswith("PA_") for e in joined)
    assert not any("a=fingerprint" in json.dumps(e) for e in events)
    assert TOKEN_SECRET not in stderr_path.read_text()  # the room-token key is never logged


async def test_bad_config_stops_startup_with_the_key(tmp_path: Path):
    config = tmp_path / "bad.toml"
    config.write_text("[rooms]\nmax_participants = 'ten'\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mediaserver",
        "serve",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert b"rooms.max_participants" in err

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mediaserver",
        "check-config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2 and b"rooms.max_participants" in err

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mediaserver",
        "check-config",
        "config.toml",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0 and b"configuration OK" in out


async def test_pure_python_variable_selects_the_python_path(tmp_path: Path):
    """MEDIASERVER_PURE_PYTHON=1 is accepted (not a setting) and forces the fallback;
    /healthz and the start-up log line say so."""
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[server]\nport = {port}\n[state]\nbackend = "memory"\n[logging]\nformat = "json"\n'
    )
    log = tmp_path / "server.log"
    proc = spawn_server(config, log, clean_env({"MEDIASERVER_PURE_PYTHON": "1"}))
    try:
        health = await wait_healthy(f"http://127.0.0.1:{port}", proc)
        assert health["forwarding"]["path"] == "python"
        assert "MEDIASERVER_PURE_PYTHON" in health["forwarding"]["reason"]
        assert health["forwarding"]["unprotect"] == "python"
    finally:
        stop_process(proc)
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert [e["forwarding"] for e in events if e.get("event") == "starting"] == ["python"]
