"""Self-fencing: a hosting node paused (SIGSTOP) for longer than its lease forwards
nothing after the lease expired, and tells its clients ``moved`` when it resumes."""

from __future__ import annotations

import asyncio
import time

import pytest
from cluster_nodes import client, mint_link, owner_of, sees_only, slug
from media import COLOURS, ColourTrack, ToneTrack

pytestmark = pytest.mark.integration

LEASE = 3.0  # cluster_nodes.Node's lease_seconds


async def inbound_packets(pc) -> int:
    report = await pc.getStats()
    return sum(s.packetsReceived for s in report.values() if s.type == "inbound-rtp")


async def test_paused_host_forwards_nothing_after_its_lease_and_says_moved(cluster, clients):
    redis, (a, b, c) = cluster
    link = await mint_link(a, "fenced")
    join = {"type": "join", "link": slug(link["host_url"]), "name": "x"}
    x = client(a.ws, "x")  # no reconnection: its connections stay open to be measured
    y = client(b.ws, "y", reconnect_seconds=60, reconnect_urls=[c.ws])
    clients += [x, y]
    for i, p in enumerate((x, y)):
        await p.connect()
        await p.join_with({**join, "name": p.name})
        await p.publish_with(lambda i=i: [ToneTrack(), ColourTrack(COLOURS[i])])
    assert await owner_of(redis, link["id"]) == "node-a"  # the tie goes to x's node
    await sees_only(x, {1})
    await sees_only(y, {0})

    a.pause()
    await asyncio.sleep(1.0)
    before = await inbound_packets(x.subscriber)  # nothing comes from a paused node
    # y's node notices a's registration expire: y is moved and rejoins elsewhere
    await y.wait_for(lambda: y.reconnects >= 1, timeout=LEASE + 20)
    assert await owner_of(redis, link["id"]) in ("node-b", "node-c")
    await asyncio.sleep(max(0.0, LEASE + 5 - 1.0 - 0.1))
    a.resume()
    resumed = time.monotonic()
    await x.wait_for(
        lambda: any(e.get("reason") == "moved" for e in x.events if e["type"] == "room_closed"),
        timeout=LEASE + 10,
    )
    heard = time.monotonic() - resumed
    await asyncio.sleep(2.0)
    # what a received while paused (y's last packets) was dropped, not flushed to x
    after = await inbound_packets(x.subscriber)
    print(f"x heard moved {heard:.2f} s after SIGCONT; packets before {before} after {after}")
    assert after == before
    # x rejoins (as the SDK does with reconnect_seconds) and meets y on the new host
    x2 = client(c.ws, "x2")
    clients.append(x2)
    await x2.connect()
    await x2.join_with({**join, "name": "x2"})
    await x2.publish([ToneTrack(), ColourTrack(COLOURS[0])])
    await sees_only(x2, {1})
    await sees_only(y, {0})
    assert await owner_of(redis, link["id"]) in ("node-b", "node-c")
