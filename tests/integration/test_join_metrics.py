"""mediaserver_join_connected_seconds: a real join (real aiortc client) is timed from the
join request to its publisher connection connected, once per join."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from media import ToneTrack
from server_helpers import join_room

pytestmark = pytest.mark.integration


def _count(server) -> float:
    for metric in server.metrics.join_connected.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count"):
                return float(sample.value)
    return 0.0


def _sum(server) -> float:
    for metric in server.metrics.join_connected.collect():
        for sample in metric.samples:
            if sample.name.endswith("_sum"):
                return float(sample.value)
    return 0.0


async def _wait_count(server, n: float, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _count(server) < n:
        assert time.monotonic() < deadline, f"histogram count {_count(server)}, wanted {n}"
        await asyncio.sleep(0.05)


async def test_join_to_publisher_connected_is_observed_once(server, clients):
    started = time.perf_counter()
    alice = server.client("alice")
    clients.append(alice)
    await alice.connect()
    await join_room(alice, "timed")
    await alice.publish([ToneTrack(440)])
    await _wait_count(server, 1)
    elapsed = time.perf_counter() - started
    assert 0 < _sum(server) <= elapsed  # from the join request, not before it

    # A second publication by the same participant is not a join.
    await alice.publish([ToneTrack(550)])
    # A participant who only subscribes has no publisher connection: not observed.
    bob = server.client("bob")
    clients.append(bob)
    await bob.connect()
    await join_room(bob, "timed")
    await bob.wait_for_tracks(2, timeout=20)
    await asyncio.sleep(0.3)
    assert _count(server) == 1

    async with aiohttp.ClientSession() as s, s.get(server.http_url + "/metrics") as r:
        text = await r.text()
    assert "mediaserver_join_connected_seconds_count 1.0" in text
    assert 'mediaserver_join_connected_seconds_bucket{le="10.0"} 1.0' in text
