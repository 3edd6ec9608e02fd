"""video_size over real aiortc peers: a hidden single-stream video is not forwarded;
a simulcast offer gets the receive lines that aiortc itself leaves out."""

from __future__ import annotations

import asyncio

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from media import COLOURS, ColourTrack, receive_frames
from server_helpers import join_room
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

    await b.send({"type": "video_size", "publication_id": video_pub["id"], "width": 0, "height": 0})
    await b.wait_for(lambda: output not in pub.forwarding.outputs, timeout=5)
    sent = output.packets
    await asyncio.sleep(1.0)
    assert output.packets == sent, "a hidden video was still forwarded"

    await b.send(
        {"type": "video_size", "publication_id": video_pub["id"], "width": 320, "height": 180}
    )
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
