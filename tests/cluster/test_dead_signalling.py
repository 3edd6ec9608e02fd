"""A client whose WebSocket node stops answering (paused: the socket stays open)
notices by its application ping and rejoins through another node."""

from __future__ import annotations

import pytest
from cluster_nodes import client, mint_link, owner_of, sees_only, slug
from media import COLOURS, ColourTrack, ToneTrack

pytestmark = pytest.mark.integration


async def test_sdk_ping_detects_a_silent_edge_and_rejoins_elsewhere(cluster, clients):
    redis, (a, b, c) = cluster
    link = await mint_link(b, "silent-edge")
    join = {"type": "join", "link": slug(link["host_url"])}
    y = client(b.ws, "y")
    x = client(
        a.ws, "x", reconnect_seconds=60, reconnect_urls=[c.ws], ping_seconds=1.0, ping_timeout=1.0
    )
    clients += [x, y]
    for i, p in enumerate((y, x)):
        await p.connect()
        await p.join_with({**join, "name": p.name})
        await p.publish_with(lambda i=i: [ToneTrack(), ColourTrack(COLOURS[i])])
    assert await owner_of(redis, link["id"]) == "node-b"  # x is relayed through a
    await sees_only(x, {0})
    await sees_only(y, {1})
    a.pause()
    try:
        await x.wait_for(lambda: x.reconnects >= 1, timeout=30)
        await sees_only(x, {0})
        await sees_only(y, {1})
        assert x.url == c.ws
    finally:
        a.resume()
