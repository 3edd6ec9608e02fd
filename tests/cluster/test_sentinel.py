"""Redis Sentinel: the primary is SIGKILLed and its replica promoted under a running
meeting: media goes on, joins work again, and no acknowledged link is lost."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
import redis.asyncio as aioredis
from cluster_nodes import Node, client, create_tenant, post_link, sees_only, slug
from media import COLOURS, ColourTrack, ToneTrack
from redis_sentinel import SERVICE, Sentinel
from redis_server import RedisServer

from mediaserver.client.sdk import ClientError

pytestmark = pytest.mark.integration


async def replica_in_sync(replica: RedisServer, timeout: float = 20.0) -> None:
    r = aioredis.from_url(replica.url)
    try:
        deadline = time.monotonic() + timeout
        while (await r.info("replication")).get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replica did not sync"
            await asyncio.sleep(0.1)
    finally:
        await r.aclose()


@pytest.fixture
async def sentinel_cluster(tmp_path):
    primary = RedisServer(tmp_path / "primary")
    primary.start()
    replica = RedisServer(
        tmp_path / "replica", args=("--replicaof", "127.0.0.1", str(primary.port))
    )
    replica.start()
    sentinel = Sentinel(tmp_path / "sentinel", primary.port)
    nodes: list[Node] = []
    try:
        await replica_in_sync(replica)
        sentinel.start()
        state = f'redis_sentinels = ["{sentinel.address}"]\nredis_sentinel_service = "{SERVICE}"'
        # the URL's address is not used with Sentinel: only its database number
        nodes = [
            Node(n, "redis://127.0.0.1:1/0", tmp_path, state=state, lease=5.0)
            for n in ("node-a", "node-b", "node-c")
        ]
        for n in nodes:
            n.start()
        for n in nodes:
            await n.ready()
        yield primary, replica, sentinel, nodes
    finally:
        for n in nodes:
            n.stop()
        sentinel.stop()
        for server in (replica, primary):
            server.kill()
            server.close()


async def test_failover_keeps_media_and_links_and_joins_come_back(sentinel_cluster, clients):
    primary, replica, sentinel, (a, b, c) = sentinel_cluster
    key = create_tenant(a)
    links = [await post_link((a, b, c)[i % 3], key, f"sl-{i}") for i in range(10)]
    join = {"type": "join", "link": slug(links[0]["host_url"])}
    x, y = client(a.ws, "x"), client(b.ws, "y")
    clients += [x, y]
    for i, p in enumerate((x, y)):
        await p.connect()
        await p.join_with({**join, "name": p.name})
        await p.publish([ToneTrack(), ColourTrack(COLOURS[i])])
    await sees_only(x, {1})
    await sees_only(y, {0})
    video = next(t for t in x.live_tracks() if t.kind == "video")

    primary.kill()
    killed = time.monotonic()
    while sentinel.primary() != replica.port:  # media flows throughout the failover
        await asyncio.wait_for(video.track.recv(), 2)
        assert time.monotonic() - killed < 60, "no failover"
    promoted = time.monotonic() - killed

    late = client(c.ws, "late")
    clients.append(late)
    await late.connect()
    while True:  # joins work again (unavailable meanwhile)
        try:
            await late.join_with({"type": "join", "link": slug(links[1]["host_url"]), "name": "l"})
            break
        except ClientError as exc:
            assert exc.code == "unavailable"
            assert time.monotonic() - killed < 60, "joins did not come back"
            await asyncio.sleep(0.2)
    joins_back = time.monotonic() - killed
    for _ in range(50):
        await asyncio.wait_for(video.track.recv(), 2)  # and still media
    await sees_only(y, {0})
    print(f"replica promoted after {promoted:.1f} s; joins back after {joins_back:.1f} s")

    async with aiohttp.ClientSession() as s:
        for link in links:  # acknowledged before the kill: on the replica too (WAIT)
            async with s.get(
                f"{c.http}/v1/links/{link['id']}", headers={"Authorization": f"Bearer {key}"}
            ) as r:
                assert r.status == 200, await r.text()
