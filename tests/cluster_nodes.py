"""Cluster test helpers: real ``mediaserver serve`` node processes on free ports."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from media import closest_colour, mean_colour, receive_frames
from redis_server import RedisServer
from server_helpers import ADHOC_ENV, MANY_CLIENTS_ENV, clean_env, free_port, spawn_server

from mediaserver.client.sdk import MeetingClient

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "mediaserver"]


class Node:
    def __init__(
        self,
        name: str,
        redis_url: str,
        workdir: Path,
        extra: str = "",
        *,
        state: str = "",
        lease: float = 3.0,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.config = workdir / f"{name}.toml"
        self.log = workdir / f"{name}.log"
        self.config.write_text(
            f"""
[server]
port = {self.port}
shutdown_grace_seconds = 3.0
[rooms]
max_participants = 100
[rtc]
ice_addresses = ["127.0.0.1"]
[state]
backend = "redis"
redis_url = "{redis_url}"
{state}
[cluster]
node_id = "{name}"
lease_seconds = {lease}
heartbeat_seconds = 0.5
[linkapi]
allow_private_webhook_urls = true
{extra}"""
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        # room joins with room tokens signed by the tests' key; many clients from
        # 127.0.0.1 (e.g. 50 concurrent first joins)
        self.proc = spawn_server(self.config, self.log, clean_env(ADHOC_ENV, MANY_CLIENTS_ENV))

    async def ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as s:
            while time.monotonic() < deadline:
                assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[
                    -2000:
                ]
                try:
                    async with s.get(self.http + "/healthz") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name} did not start")

    async def health(self) -> dict:
        async with aiohttp.ClientSession() as s, s.get(self.http + "/healthz") as r:
            return await r.json()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def owner_of(redis: RedisServer, room: str) -> str:
    import redis.asyncio as aioredis

    r = aioredis.from_url(redis.url)
    try:
        value = await r.get(f"ms:room:{room}:owner")
    finally:
        await r.aclose()
    return value.decode().split("|")[0] if value else ""


def create_tenant(node: Node) -> str:
    """A tenant through the CLI (on the shared store); returns its API key."""
    out = subprocess.run(
        [*CLI, "tenant", "create", "Acme", "--config", str(node.config)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=60,
    )
    return out.stdout.strip().splitlines()[-1]


async def post_link(node: Node, key: str, event_id: str) -> dict:
    """A link for an event that started a minute ago."""
    now = time.time()
    event = {
        "id": event_id,
        "start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60)),
        "end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600)),
    }
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            node.http + "/v1/links",
            json={"event": event},
            headers={"Authorization": f"Bearer {key}"},
        ) as r,
    ):
        assert r.status == 201
        return await r.json()


async def mint_link(node: Node, event_id: str) -> dict:
    """A tenant and a link starting now."""
    return await post_link(node, create_tenant(node), event_id)


def slug(url: str) -> str:
    return url.split("/j/")[1]


def client(url: str, name: str, **kw) -> MeetingClient:
    return MeetingClient(url, name=name, ice_addresses=["127.0.0.1"], **kw)


async def sees_colour(c: MeetingClient, colour: int, timeout: float = 15.0) -> None:
    tracks = await c.wait_for_tracks(2, timeout=timeout)
    video = next(t for t in tracks if t.kind == "video")
    frames = await receive_frames(video.track, 3, timeout=timeout)
    assert closest_colour(mean_colour(frames[-1])) == colour


async def colours_seen(c: MeetingClient, timeout: float = 5.0) -> set[int]:
    """The colours of the video tracks ``c`` receives frames from now."""
    seen = set()
    for t in c.live_tracks():
        if t.kind == "video":
            try:
                frames = await receive_frames(t.track, 2, timeout=timeout)
            except Exception:
                continue
            seen.add(closest_colour(mean_colour(frames[-1])))
    return seen


async def hosting(nodes: list[Node]) -> list[str]:
    """The nodes that host at least one room now (a stopped node counts as not)."""
    out = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.5)) as s:
        for n in nodes:
            try:
                async with s.get(n.http + "/healthz") as r:
                    if (await r.json())["rooms"] > 0:
                        out.append(n.name)
            except (aiohttp.ClientError, TimeoutError):
                pass
    return out


async def sees_only(c: MeetingClient, colours: set[int], timeout: float = 30.0) -> None:
    """Wait until ``c`` receives video of exactly ``colours``."""
    deadline = time.monotonic() + timeout
    while (got := await colours_seen(c, 2.0)) != colours:
        assert time.monotonic() < deadline, f"{c.name} sees {got}, not {colours}"
        await asyncio.sleep(0.2)
