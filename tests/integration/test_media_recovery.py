"""Media recovery without leaving: fresh publisher / subscriber connections over the same
signalling session (the SDK's restart_media, which it runs when a connection fails)."""

from __future__ import annotations

import pytest
from media import closest_colour, mean_colour, receive_frames
from test_media import join_and_publish

pytestmark = pytest.mark.integration


async def _sees_colour(client, publisher_id: str, colour: int) -> None:
    await client.wait_for(
        lambda: any(
            t.participant_id == publisher_id and t.kind == "video" and not t.ended.is_set()
            for t in client.remote_tracks.values()
        ),
        timeout=20,
    )
    (track,) = [
        t
        for t in client.remote_tracks.values()
        if t.participant_id == publisher_id and t.kind == "video" and not t.ended.is_set()
    ]
    frames = await receive_frames(track.track, 5, timeout=15)
    assert closest_colour(mean_colour(frames[-1])) == colour


async def test_fresh_connections_keep_the_meeting(server, clients):
    a, b = await join_and_publish(server, clients, 2, room="recover")
    await _sees_colour(b, a.participant_id, 0)
    publications = [p["id"] for p in a.publications]
    old_publisher, old_subscriber = a.publisher, a.subscriber

    await a.restart_media("publisher")
    await a.restart_media("subscriber")

    assert a.publisher is not old_publisher and old_publisher.connectionState == "closed"
    assert [p["id"] for p in a.publications] == publications  # same publications carry on
    await _sees_colour(b, a.participant_id, 0)  # b keeps its track: new source, same stream
    await _sees_colour(a, b.participant_id, 1)  # a's fresh subscriber connection
    assert a.subscriber is not old_subscriber
    room = server.rooms.rooms["recover"]
    assert set(room.participants) == {a.participant_id, b.participant_id}
    assert a.media_restarts == 2 and a.reconnects == 0
    for name in ("participant_left", "participant_joined"):
        assert not [e for e in b.events if e.get("type") == name]


async def test_a_refused_subscribe_answer_gets_a_fresh_subscriber(server, clients):
    """The server refuses an answer (here: mangled on its way out of the SDK): its offer
    would stay outstanding and the subscriber connection stuck; the SDK sees the error
    with its answer's id and asks for a fresh subscriber connection, which works."""
    from server_helpers import join_room

    viewer = server.client("viewer")
    clients.append(viewer)
    original_send = viewer.send
    mangled: list[int] = []

    async def send(message):
        if message.get("type") == "subscribe_answer" and not mangled:
            mangled.append(int(message["id"]))
            message = {**message, "sdp": message["sdp"].replace("a=fingerprint:", "a=fprint:")}
        await original_send(message)

    viewer.send = send
    await viewer.connect()
    await join_room(viewer, "refused-answer")
    (sender,) = await join_and_publish(server, [], 1, room="refused-answer")
    clients.append(sender)
    # the refusal comes back asynchronously: until then the first connection's tracks
    # (which never get media) are the viewer's
    await viewer.wait_for(lambda: viewer.media_restarts == 1, timeout=20)
    await _sees_colour(viewer, sender.participant_id, 0)
    refused = [e for e in viewer.errors if e.get("ref") == mangled[0]]
    assert [e["code"] for e in refused] == ["invalid_sdp"], viewer.errors
    assert viewer.media_restarts == 1


async def test_a_busy_publish_is_sent_again_by_the_sdk(server, clients):
    """While the node's SDP slots are all taken (and its queue full) a publish gets
    ``busy``; the SDK sends it again after a pause, and it goes through once a slot
    frees, without the caller seeing the refusals."""
    import asyncio

    from media import COLOURS, ColourTrack, ToneTrack
    from server_helpers import join_room

    gate = server.rooms.sdp_work
    gate.concurrent, gate.queued = 1, 0
    c = server.client("patient")
    clients.append(c)
    await c.connect()
    await join_room(c, "busy-node")
    released = asyncio.Event()

    async def hold_the_slot() -> None:
        async with gate.slot():
            await released.wait()

    holder = asyncio.ensure_future(hold_the_slot())
    await asyncio.sleep(0)
    publishing = asyncio.ensure_future(c.publish([ToneTrack(440), ColourTrack(COLOURS[0])]))
    await c.wait_for(lambda: c.busy_retries >= 2, timeout=10)
    assert not publishing.done()
    released.set()
    await holder
    publications = await asyncio.wait_for(publishing, 15)
    assert sorted(p["kind"] for p in publications) == ["audio", "video"]
    assert [e["code"] for e in c.errors] == ["busy"] * c.busy_retries
