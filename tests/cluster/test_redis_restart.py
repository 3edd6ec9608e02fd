"""Redis killed (SIGKILL) and restarted with its data while a room has clients on
three nodes: one host at any time, nobody left behind, links kept, 503 meanwhile."""

from __future__ import annotations

import asyncio
import os
import time

import aiohttp
import pytest
from cluster_nodes import client, colours_seen, create_tenant, hosting, post_link, slug
from media import COLOURS, ColourTrack, ToneTrack

pytestmark = pytest.mark.integration

#: `make soak` sets this to run the scenario several times in a row.
REPEAT = int(os.environ.get("CLUSTER_SOAK_REPEAT", "1"))


async def watch_hosts(nodes, seen: list[list[str]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        seen.append(await hosting(nodes))
        await asyncio.sleep(0.1)


async def all_see_each_other(people, deadline: float) -> None:
    want = {i: {j for j in range(len(people)) if j != i} for i in range(len(people))}
    while True:
        got = {i: await colours_seen(p, timeout=1.0) for i, p in enumerate(people)}
        if all(want[i] <= got[i] for i in want):
            return
        assert time.monotonic() < deadline, f"media missing: wanted {want}, got {got}"
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("run", range(REPEAT))
async def test_redis_restart_keeps_one_room_and_everyone(cluster, clients, run):
    redis, nodes = cluster
    key = create_tenant(nodes[0])
    links = [await post_link(nodes[i % 3], key, f"ev-{run}-{i}") for i in range(20)]
    meeting = links[0]
    people = [
        client(n.ws, f"p{i}", reconnect_seconds=60, reconnect_urls=[m.ws for m in nodes if m != n])
        for i, n in enumerate(nodes)
    ]
    clients += people
    for i, p in enumerate(people):
        await p.connect()
        await p.join_with({"type": "join", "link": slug(meeting["host_url"]), "name": p.name})
        await p.publish_with(lambda i=i: [ToneTrack(), ColourTrack(COLOURS[i])])
    await all_see_each_other(people, time.monotonic() + 30)

    seen: list[list[str]] = []
    stop = asyncio.Event()
    watcher = asyncio.ensure_future(watch_hosts(nodes, seen, stop))
    try:
        redis.kill()
        # The link API during the outage: 503 with Retry-After, never 500.
        async with aiohttp.ClientSession() as s:
            for n in nodes:
                async with s.get(
                    f"{n.http}/v1/links/{meeting['id']}", headers={"Authorization": f"Bearer {key}"}
                ) as r:
                    assert r.status == 503, await r.text()
                    assert int(r.headers["Retry-After"]) >= 1
        await asyncio.sleep(4.0)  # longer than a lease: every key expires meanwhile
        redis.start()
        back = time.monotonic()
        await all_see_each_other(people, back + 30)
        recovered = time.monotonic() - back
        await asyncio.sleep(3.0)  # and it stays that way for a lease
        await all_see_each_other(people, time.monotonic() + 10)
    finally:
        stop.set()
        await watcher
    print(f"media back {recovered:.1f} s after Redis; reconnects", [p.reconnects for p in people])
    assert max(len(h) for h in seen) == 1, [h for h in seen if len(h) > 1][:5]
    for p in people:  # nobody was left behind silently: told, then back
        told = any(e.get("reason") == "moved" for e in p.events if e["type"] == "room_closed")
        told = told or any(e.get("code") == "room_moved" for e in p.errors)
        assert p.reconnects == 0 or told, (p.name, p.events[-5:], p.errors)
    async with aiohttp.ClientSession() as s:
        for link in links:  # nothing acknowledged before the kill was lost
            async with s.get(
                f"{nodes[1].http}/v1/links/{link['id']}", headers={"Authorization": f"Bearer {key}"}
            ) as r:
                assert r.status == 200
    health = [await n.health() for n in nodes]
    assert sum(h["participants"] for h in health) == 3
