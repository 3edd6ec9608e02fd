"""video_size over real aiortc peers: a hidden single-stream video is not forwarded;
a simulcast offer gets the receive lines that aiortc itself leaves out."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from media import COLOURS, ColourTrack, ToneTrack, closest_colour, mean_colour, receive_frames
from server_helpers import join_room, make_config, serving
from test_media import check_everyone_sees_everyone, join_and_publish

from mediaserver.sfu.peer import make_configuration
from mediaserver.sfu.simulcast import EXT_REPAIRED_RID, EXT_RID

pytestmark = pytest.mark.integration


async def test_hidden_video_is_not_forwarded_and_comes_back_when_shown(server, clients):
    await join_and_publish(server, clients, 2)
    await check_everyone_sees_everyone(clients)
    a, b = clients
    video_pub = next(p for p in a.publications if p["kind"] == "video")
    pub = server.rooms.rooms["r1"].participants[a.participant_id].publications[video_pub["id"]]
    output = pub.forwarding.outputs[0]

    await b.set_video_size(video_pub["id"], 0, 0)
    await b.wait_for(lambda: output not in pub.forwarding.outputs, timeout=5)
    sent = output.packets
    await asyncio.sleep(1.0)
    assert output.packets == sent, "a hidden video was still forwarded"

    await b.set_video_size(video_pub["id"], 320, 180)
    video = next(t for t in b.live_tracks() if t.kind == "video")
    await receive_frames(video.track, 40, timeout=10)  # drains old frames and gets new ones
    assert output.packets > sent

    # a publication nobody has: not_found; a bad size: invalid_field
    for bad, code in (
        ({"publication_id": "PU_nope", "width": 1, "height": 1}, "not_found"),
        ({"publication_id": video_pub["id"], "width": -1, "height": 1}, "invalid_field"),
    ):
        await b.send({"type": "video_size", "id": "x", **bad})
        err = await b.wait_message("error", timeout=5)
        assert err["code"] == code, err


SIMULCAST_LINES = (
    f"a=extmap:10 {EXT_RID}\r\n"
    f"a=extmap:11 {EXT_REPAIRED_RID}\r\n"
    "a=rid:q send\r\na=rid:h send\r\na=rid:f send\r\na=simulcast:send q;h;f\r\n"
)


async def test_simulcast_offer_gets_receive_lines_that_aiortc_leaves_out(server, clients):
    c = server.client("sim")
    clients.append(c)
    await c.connect()
    await join_room(c, "r1")
    pc = RTCPeerConnection(make_configuration())
    try:
        pc.addTransceiver(ColourTrack(COLOURS[0]), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription.sdp
        at = offer.index("a=rtpmap:", offer.index("m=video"))
        offer = offer[:at] + SIMULCAST_LINES + offer[at:]
        reply = await c.request({"type": "publish", "sdp": offer})
        answer = reply["sdp"]
        assert f"a=extmap:10 {EXT_RID}\r\n" in answer
        assert f"a=extmap:11 {EXT_REPAIRED_RID}\r\n" in answer
        assert "a=rid:q recv\r\na=rid:h recv\r\na=rid:f recv\r\n" in answer
        assert answer.count("a=simulcast:recv q;h;f\r\n") == 1
        (published,) = reply["publications"]
        assert published["layers"] == ["q", "h", "f"]
        # canary: aiortc 1.16's own answer has none of it (if a new aiortc adds simulcast,
        # the munging in sfu/simulcast.py must be revisited)
        participant = server.rooms.rooms["r1"].participants[c.participant_id]
        own = participant.publisher.pc.localDescription.sdp
        assert "a=simulcast" not in own and "a=rid:" not in own and EXT_RID not in own
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    finally:
        await pc.close()


async def test_last_n_forwards_camera_video_of_the_most_recent_speakers_only(clients):
    """rooms.last_n = 1: before anyone speaks the first to join is seen; a new active
    speaker takes the slot. Audio always flows."""
    async with serving(make_config(last_n=1)) as srv:
        tones = []
        for i, name in enumerate(("ann", "bob", "cat")):
            c = srv.client(name)
            clients.append(c)
            await c.connect()
            await join_room(c, "big")
            tone = ToneTrack(300 + 100 * i, amplitude=0)
            tones.append(tone)
            await c.publish([tone] + ([ColourTrack(COLOURS[i])] if i < 2 else []))
        ann, bob, cat = clients
        room = srv.rooms.rooms["big"]
        await cat.wait_for_tracks(4, timeout=20)

        def outputs_to_cat(owner):
            pub = next(
                p for p in room.participants[owner.participant_id].publications.values() if p.video
            )
            sub = pub.subscriptions[cat.participant_id]
            return pub.forwarding.outputs, sub.output

        ann_outputs, ann_out = outputs_to_cat(ann)
        bob_outputs, bob_out = outputs_to_cat(bob)
        await cat.wait_for(lambda: ann_out in ann_outputs and bob_out not in bob_outputs)
        # bob speaks: he becomes the one cat sees
        tones[1]._amplitude = 9000
        await cat.wait_for(
            lambda: bob_out in bob_outputs and ann_out not in ann_outputs, timeout=15
        )
        video = next(
            t
            for t in cat.live_tracks()
            if t.kind == "video" and t.participant_id == bob.participant_id
        )
        frames = await receive_frames(video.track, 20, timeout=10)
        assert closest_colour(mean_colour(frames[-1])) == 1
        # audio from everyone is still forwarded to cat
        audio = [
            p
            for who in (ann, bob)
            for p in room.participants[who.participant_id].publications.values()
            if not p.video
        ]
        assert all(
            p.subscriptions[cat.participant_id].output in p.forwarding.outputs for p in audio
        )


async def test_simulcast_bot_layers_switch_with_continuous_sequence_numbers(server, clients):
    """A publisher sending three rid layers the way browsers do (the bench's simulcast
    bot) and an aiortc subscriber: its size picks the layer (packet sizes show which),
    and across the switches its sequence numbers stay continuous and its timestamps
    never go back."""
    from aiortc import RTCSessionDescription as Desc

    from loadtests.grid import LAYERS, SimulcastPump, simulcast_offer
    from mediaserver.sfu.peer import IdleTrack

    pub_client = server.client("sim")
    viewer = server.client("viewer")
    clients += [pub_client, viewer]
    for c in (pub_client, viewer):
        await c.connect()
        await join_room(c, "r1")
    pc = pub_client.publisher = pub_client._watched_pc("publisher")
    pc.addTransceiver(IdleTrack("video"), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    reply = await pub_client.request(
        {"type": "publish", "sdp": simulcast_offer(pc.localDescription.sdp)}
    )
    await pc.setRemoteDescription(Desc(sdp=reply["sdp"], type="answer"))
    await pub_client.wait_for(lambda: pc.connectionState == "connected", timeout=10)
    pump = SimulcastPump(pc)
    pump.start()
    try:
        (publication,) = reply["publications"]
        pub = (
            server.rooms.rooms["r1"]
            .participants[pub_client.participant_id]
            .publications[publication["id"]]
        )
        sim = pub.simulcast
        assert sim is not None
        await viewer.wait_for(lambda: sim.bound == 3, timeout=10)
        seen: list[tuple[int, int, int]] = []  # (seq, ts, length) of video packets

        async def on_rtp(data: bytes, arrival_time_ms: int) -> None:
            seq, ts = int.from_bytes(data[2:4], "big"), int.from_bytes(data[4:8], "big")
            seen.append((seq, ts, len(data)))  # only video is published here

        await viewer.wait_for(lambda: viewer.subscriber is not None, timeout=10)
        await viewer.wait_for_tracks(1, timeout=10)
        dtls = viewer.subscriber.getTransceivers()[0].receiver.transport
        dtls._handle_rtp_data = on_rtp
        small, large = LAYERS["q"][3], LAYERS["f"][3]
        for width, height, packet in ((320, 180, small), (1280, 720, large), (320, 180, small)):
            await viewer.set_video_size(publication["id"], width, height)
            mark = len(seen)
            await viewer.wait_for(
                lambda mark=mark, packet=packet: any(
                    abs(n - packet) < 80 for _, _, n in seen[mark:][-5:]
                ),
                timeout=15,
            )
        assert sim.switches_done >= 3
        seqs = [s for s, _, _ in seen]
        assert all(((b - a) & 0xFFFF) == 1 for a, b in itertools.pairwise(seqs)), (
            "sequence numbers jump at a layer switch"
        )
        tss = [t for _, t, _ in seen]
        assert all(((b - a) & 0xFFFFFFFF) < 0x80000000 for a, b in itertools.pairwise(tss))
    finally:
        await pump.stop()
