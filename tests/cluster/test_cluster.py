"""Three real node processes and a real redis-server (started here on a free port)."""

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
from redis_server import RedisServer
from server_helpers import ADHOC_ENV, cli_tenant_key, free_port, join_room, room_token, stop_process

from mediaserver.client.sdk import ClientError, MeetingClient

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


class Node:
    def __init__(self, name: str, redis_url: str, workdir: Path) -> None:
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
[cluster]
node_id = "{name}"
lease_seconds = 3.0
heartbeat_seconds = 0.5
[linkapi]
allow_private_webhook_urls = true
"""
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIASERVER_")} | ADHOC_ENV
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mediaserver", "serve", "--config", str(self.config)],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=env,
                cwd=ROOT,
            )

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

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture
async def cluster(tmp_path):
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    nodes = [Node(n, redis.url, tmp_path) for n in ("node-a", "node-b", "node-c")]
    for n in nodes:
        n.start()
    try:
        for n in nodes:
            await n.ready()
        yield redis, nodes
    finally:
        for n in nodes:
            n.stop()
        redis.kill()
        redis.close()


async def owner_of(redis: RedisServer, room: str) -> str:
    import redis.asyncio as aioredis

    r = aioredis.from_url(redis.url)
    try:
        value = await r.get(f"ms:room:{room}:owner")
    finally:
        await r.aclose()
    return value.decode().split("|")[0] if value else ""


async def mint_link(node: Node, event_id: str) -> dict:
    """A tenant (through the CLI, on the shared store) and a link starting now."""
    key = cli_tenant_key(node.config)
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


def client(url: str, name: str, **kw) -> MeetingClient:
    return MeetingClient(url, name=name, ice_addresses=["127.0.0.1"], **kw)


async def sees_colour(c: MeetingClient, colour: int, timeout: float = 15.0) -> None:
    tracks = await c.wait_for_tracks(2, timeout=timeout)
    video = next(t for t in tracks if t.kind == "video")
    frames = await receive_frames(video.track, 3, timeout=timeout)
    assert closest_colour(mean_colour(frames[-1])) == colour


async def test_clients_on_two_nodes_meet_on_a_third(cluster, clients):
    redis, (a, b, c) = cluster
    # some load on a and b: the least-loaded node (c) gets the new room
    for node in (a, b):
        filler = client(node.ws, "filler")
        clients.append(filler)
        await filler.connect()
        await join_room(filler, f"filler-{node.name}")
    await asyncio.sleep(1.2)  # heartbeats carry the load
    # joins without a valid room token are refused before placement: no lease anywhere
    probe = client(a.ws, "mallory")
    clients.append(probe)
    await probe.connect()
    for token, code in ((None, "token_required"), (room_token("other", "m"), "invalid_token")):
        with pytest.raises(ClientError) as exc:
            await probe.join_with({"type": "join", "room": "meet", "name": "m", "token": token})
        assert exc.value.code == code
    assert await owner_of(redis, "meet") == ""
    x = client(a.ws, "via-a")
    y = client(b.ws, "via-b")
    clients += [x, y]
    for i, cl in enumerate((x, y)):
        await cl.connect()
        joined = await join_room(cl, "meet")
        assert joined["room"] == "meet"
        await cl.publish([ToneTrack(), ColourTrack(COLOURS[i])])
    assert await owner_of(redis, "meet") == "node-c"
    await sees_colour(x, 1)
    await sees_colour(y, 0)
    health = {n.name: await n.health() for n in (a, b, c)}
    assert health["node-c"]["participants"] == 2  # the room and its media are on c


async def test_concurrent_first_joins_end_in_one_room(cluster, clients):
    redis, (a, b, _) = cluster
    people = [client((a if i % 2 else b).ws, f"p{i}") for i in range(50)]
    clients += people
    await asyncio.gather(*(p.connect() for p in people))
    replies = await asyncio.gather(*(join_room(p, "race") for p in people))
    assert all(r["room"] == "race" for r in replies)
    owner = await owner_of(redis, "race")
    health = {n.name: await n.health() for n in cluster[1]}
    assert health[owner]["participants"] == 50
    assert sum(h["participants"] for h in health.values()) == 50


async def test_owner_killed_media_resumes(cluster, clients):
    redis, (a, b, c) = cluster
    for node in (a, b):
        filler = client(node.ws, "filler")
        clients.append(filler)
        await filler.connect()
        await join_room(filler, f"filler-{node.name}")
    await asyncio.sleep(1.2)
    x = client(a.ws, "x", reconnect_seconds=30)
    y = client(b.ws, "y", reconnect_seconds=30)
    clients += [x, y]
    for i, cl in enumerate((x, y)):
        await cl.connect()
        await cl.join_with(
            {"type": "join", "room": "moving", "token": room_token("moving", cl.name)}
        )
        await cl.publish_with(lambda i=i: [ToneTrack(), ColourTrack(COLOURS[i])])
    assert await owner_of(redis, "moving") == "node-c"
    await sees_colour(x, 1)
    killed_at = time.monotonic()
    c.kill()
    await x.wait_for(lambda: x.reconnects >= 1, timeout=20)
    await y.wait_for(lambda: y.reconnects >= 1, timeout=20)
    await sees_colour(x, 1, timeout=15)
    await sees_colour(y, 0, timeout=15)
    assert time.monotonic() - killed_at < 10, "media took longer than 10 s to come back"
    assert await owner_of(redis, "moving") in ("node-a", "node-b")


async def test_redis_outage_keeps_media_and_refuses_joins_clearly(cluster, clients):
    redis, (a, b, _) = cluster
    x = client(a.ws, "x")
    y = client(a.ws, "y")
    clients += [x, y]
    for i, cl in enumerate((x, y)):
        await cl.connect()
        await join_room(cl, "steady")
        await cl.publish([ToneTrack(), ColourTrack(COLOURS[i])])
    await sees_colour(x, 1)
    video = next(t for t in x.live_tracks() if t.kind == "video")
    redis.stop()
    outage_started = time.monotonic()
    frames = 0
    late = client(b.ws, "late")
    clients.append(late)
    await late.connect()
    with pytest.raises(ClientError) as err:
        await join_room(late, "steady")
    assert err.value.code == "unavailable"
    while time.monotonic() - outage_started < 5:
        await asyncio.wait_for(video.track.recv(), 2)  # media never stops
        frames += 1
    assert frames > 50
    redis.start()
    await asyncio.sleep(2.0)  # heartbeats and leases come back
    again = client(b.ws, "again")
    clients.append(again)
    await again.connect()
    joined = await join_room(again, "steady")
    assert joined["room"] == "steady" and len(joined["participants"]) == 2


async def test_lobby_across_nodes(cluster, clients):
    _, (a, b, _) = cluster
    link = await mint_link(a, "x-node")
    slug = link["join_url"].split("/j/")[1]
    host_slug = link["host_url"].split("/j/")[1]
    host = client(a.ws, "Hana")
    guest = client(b.ws, "Gus")
    clients += [host, guest]
    await host.connect()
    await guest.connect()
    await host.request({"type": "join", "link": host_slug, "name": "Hana"})
    waiting = await guest.request({"type": "join", "link": slug, "name": "Gus"})
    assert waiting["type"] == "lobby" and waiting["host_present"] is True
    await host.wait_for(lambda: any(e["type"] == "knock" for e in host.events), timeout=10)
    knock = next(e for e in host.events if e["type"] == "knock")
    await host.request({"type": "admit", "knock_id": knock["knock"]["id"]})
    await guest.wait_for(lambda: any(e["type"] == "joined" for e in guest.events), timeout=10)
    joined = next(e for e in guest.events if e["type"] == "joined")
    assert joined["role"] == "guest" and [p["name"] for p in joined["participants"]] == ["Hana"]
    assert json.dumps(joined)  # a plain JSON message travelled node to node


async def test_workers_share_the_port_as_cluster_nodes(tmp_path):
    import redis.asyncio as aioredis

    redis = RedisServer(tmp_path / "redis")
    redis.start()
    node = Node("multi", redis.url, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIASERVER_")} | ADHOC_ENV
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mediaserver",
            "serve",
            "--workers",
            "2",
            "--config",
            str(node.config),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=ROOT,
    )
    node.proc = proc
    try:
        await node.ready()
        r = aioredis.from_url(redis.url)
        try:
            for _ in range(50):
                alive = [k async for k in r.scan_iter("ms:node:*")]
                if len(alive) == 2:
                    break
                await asyncio.sleep(0.1)
        finally:
            await r.aclose()
        assert sorted(k.decode() for k in alive) == ["ms:node:multi-w0", "ms:node:multi-w1"]
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.get_running_loop().run_in_executor(None, proc.wait, 20) == 0
    finally:
        node.stop()
        redis.kill()
        redis.close()


async def test_host_keeps_role_after_its_node_dies(cluster, clients):
    redis, (a, b, _) = cluster
    link = await mint_link(a, "failover")
    host_slug = link["host_url"].split("/j/")[1]
    host = client(a.ws, "Hana", reconnect_urls=[b.ws], reconnect_seconds=30)
    clients.append(host)
    await host.connect()
    joined = await host.join_with({"type": "join", "link": host_slug, "name": "Hana"})
    assert joined["role"] == "host"
    owner = await owner_of(redis, link["id"])
    assert owner == "node-a"  # the least-loaded tie goes to the node the join came through
    a.kill()
    await host.wait_for(lambda: host.reconnects >= 1, timeout=20)
    rejoined = [e for e in host.events if e["type"] == "joined"][-1]
    assert rejoined["role"] == "host"
    assert await owner_of(redis, link["id"]) in ("node-b", "node-c")
