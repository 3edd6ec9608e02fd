"""Real aiortc peers exchanging real media through the SFU over loopback."""

from __future__ import annotations

import asyncio

import pytest
from media import COLOURS, ColourTrack, ToneTrack, closest_colour, mean_colour, receive_frames

pytestmark = pytest.mark.integration


async def join_and_publish(server, clients, n: int, room: str = "r1"):
    for i in range(n):
        c = server.client(f"peer{i}")
        clients.append(c)
        await c.connect()
        await c.join(room)
        await c.publish([ToneTrack(300 + 100 * i), ColourTrack(COLOURS[i])])
    return clients


async def check_everyone_sees_everyone(clients) -> None:
    n = len(clients)
    ids = [c.participant_id for c in clients]
    colour_of = {pid: i for i, pid in enumerate(ids)}
    for c in clients:
        tracks = await c.wait_for_tracks(2 * (n - 1), timeout=20)
        publishers = {t.participant_id for t in tracks}
        assert publishers == set(ids) - {c.participant_id}
        for t in tracks:
            if t.kind == "video":
                frames = await receive_frames(t.track, 5, timeout=10)
                got = closest_colour(mean_colour(frames[-1]))
                assert got == colour_of[t.participant_id], (
                    f"{c.name} sees colour {COLOURS[got]} on {t.participant_id}'s track"
                )
            else:
                frames = await receive_frames(t.track, 5, timeout=10)
                assert frames[-1].sample_rate == 48000


@pytest.mark.parametrize("n", [2, 4])
async def test_everyone_receives_everyone(server, clients, n):
    await join_and_publish(server, clients, n)
    await check_everyone_sees_everyone(clients)
    room = server.rooms.rooms["r1"]
    assert len(room.participants) == n
    await asyncio.sleep(1.2)  # metrics are flushed by the room ticker
    text = (await _metrics(server))
    assert 'mediaserver_forwarded_packets_total{kind="video"}' in text


async def _metrics(server) -> str:
    import aiohttp

    async with aiohttp.ClientSession() as s, s.get(server.http_url + "/metrics") as r:
        return await r.text()
