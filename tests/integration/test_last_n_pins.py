"""Last-N exemptions over real aiortc peers: a subscriber's pins, and a screen-sharer's
camera (rooms.last_n = 1; nobody speaks, so everyone's last-N is the first to join)."""

from __future__ import annotations

from typing import Any

import pytest
from aiortc import RTCSessionDescription
from media import COLOURS, ColourTrack, ToneTrack, closest_colour, mean_colour, receive_frames
from server_helpers import join_room, make_config, serving

from mediaserver.client.sdk import ClientError, MeetingClient

pytestmark = pytest.mark.integration


async def share_screen(c: MeetingClient) -> dict[str, Any]:
    """Publish one more video as a screen share (``publish.sources``), as the join page
    does; returns the screen publication."""
    pc = c.publisher
    assert pc is not None
    transceiver = pc.addTransceiver(ColourTrack(COLOURS[4]), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    reply = await c.request(
        {"type": "publish", "sdp": pc.localDescription.sdp, "sources": {transceiver.mid: "screen"}}
    )
    await pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="answer"))
    c.publications = list(reply["publications"])
    return next(p for p in c.publications if p["source"] == "screen")


async def test_a_pinned_non_speaker_reaches_the_pinning_subscriber_only(clients):
    async with serving(make_config(last_n=1)) as srv:
        for i, name in enumerate(("ann", "bob", "cat", "dan")):
            c = srv.client(name)
            clients.append(c)
            await c.connect()
            await join_room(c, "big")
            video = [ColourTrack(COLOURS[i])] if i < 2 else []
            await c.publish([ToneTrack(300 + 100 * i, amplitude=0), *video])
        ann, bob, cat, dan = clients
        room = srv.rooms.rooms["big"]
        await cat.wait_for_tracks(5, timeout=20)
        await dan.wait_for_tracks(5, timeout=20)

        def camera(owner: MeetingClient):
            return next(
                p
                for p in room.participants[owner.participant_id].publications.values()
                if p.source == "camera"
            )

        def output(owner: MeetingClient, viewer: MeetingClient):
            return camera(owner).subscriptions[viewer.participant_id].output

        def flows(owner: MeetingClient, viewer: MeetingClient) -> bool:
            out = output(owner, viewer)
            return out is not None and out in camera(owner).forwarding.outputs

        await cat.wait_for(lambda: output(bob, cat) is not None and output(bob, dan) is not None)
        await cat.wait_for(lambda: flows(ann, cat) and flows(ann, dan))
        assert not flows(bob, cat) and not flows(bob, dan)  # outside everyone's last-N
        dan_from_bob = output(bob, dan).packets

        assert await cat.pin(bob.participant_id) == [bob.participant_id]
        assert room.pins.of(cat.participant_id) == (bob.participant_id,)
        bob_at_cat = next(
            t
            for t in cat.live_tracks()
            if t.kind == "video" and t.participant_id == bob.participant_id
        )
        frames = await receive_frames(bob_at_cat.track, 20, timeout=15)
        assert closest_colour(mean_colour(frames[-1])) == 1  # bob's camera, at cat
        assert flows(ann, cat)  # the last-N itself is unchanged
        # dan did not pin bob: nothing of bob's camera went to dan meanwhile
        assert not flows(bob, dan)
        assert output(bob, dan).packets == dan_from_bob

        # pinning again is a no-op; errors are precise and change nothing
        assert await cat.pin(bob.participant_id) == [bob.participant_id]
        for target, pinned, code in (
            (cat.participant_id, True, "not_found"),  # yourself
            ("PA_nobody", True, "not_found"),
        ):
            with pytest.raises(ClientError) as info:
                await cat.pin(target, pinned)
            assert info.value.code == code
        with pytest.raises(ClientError) as info:
            await cat.request({"type": "pin", "participant_id": bob.participant_id, "pinned": 1})
        assert info.value.code == "invalid_field"
        assert room.pins.of(cat.participant_id) == (bob.participant_id,)

        # unpinned: bob's camera stops going to cat
        assert await cat.pin(bob.participant_id, pinned=False) == []
        await cat.wait_for(lambda: not flows(bob, cat))
        assert flows(ann, cat)

        # pins vanish when the pinned one leaves
        assert await cat.pin(bob.participant_id) == [bob.participant_id]
        await cat.wait_for(lambda: flows(bob, cat))
        await bob.leave()
        await cat.wait_for(lambda: bob.participant_id not in room.participants)
        assert room.pins.of(cat.participant_id) == ()
        with pytest.raises(ClientError) as info:
            await cat.pin(bob.participant_id)
        assert info.value.code == "not_found"


async def test_a_screen_sharers_camera_reaches_everyone_while_it_shares(clients):
    async with serving(make_config(last_n=1)) as srv:
        for i, name in enumerate(("ann", "bob", "cat")):
            c = srv.client(name)
            clients.append(c)
            await c.connect()
            await join_room(c, "big")
            await c.publish([ColourTrack(COLOURS[i])] if i < 2 else [ToneTrack(500, amplitude=0)])
        _, bob, cat = clients
        room = srv.rooms.rooms["big"]
        await cat.wait_for_tracks(2, timeout=20)
        cam = next(iter(room.participants[bob.participant_id].publications.values()))
        await cat.wait_for(lambda: cam.subscriptions.get(cat.participant_id) is not None)
        to_cat = cam.subscriptions[cat.participant_id]
        await cat.wait_for(lambda: to_cat.output is not None)
        assert to_cat.output not in cam.forwarding.outputs  # bob is outside cat's last-N

        screen = await share_screen(bob)
        await cat.wait_for(lambda: to_cat.output in cam.forwarding.outputs, timeout=15)
        await cat.wait_for_tracks(3, timeout=20)
        bob_camera = next(
            t for t in cat.live_tracks() if t.kind == "video" and t.publication_id == cam.id
        )
        frames = await receive_frames(bob_camera.track, 20, timeout=15)
        assert closest_colour(mean_colour(frames[-1])) == 1
        # the share is stopped (muted): bob's camera is under last-N again
        await bob.set_muted(screen["id"], True)
        await cat.wait_for(lambda: to_cat.output not in cam.forwarding.outputs, timeout=15)
