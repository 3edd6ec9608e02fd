"""Real aiortc peers exchanging real media through the SFU over loopback, on both
forwarding paths (native and the pure-Python reference)."""

from __future__ import annotations

import asyncio

import pytest
from aiortc.mediastreams import MediaStreamError
from media import COLOURS, ColourTrack, ToneTrack, closest_colour, mean_colour, receive_frames
from server_helpers import join_room

from mediaserver.client.sdk import ClientError
from mediaserver.sfu import fastpath

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True, params=["native", "python"])
def forwarding_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Rooms created in the test forward on this path (the factories read PATH)."""
    if request.param == "native" and fastpath.PATH != "native":
        pytest.skip(f"native path not active: {fastpath.REASON}")
    monkeypatch.setattr(fastpath, "PATH", request.param)
    return str(request.param)


def native_packets() -> int:
    return int(str(fastpath.status()["native_packets"]))


async def join_and_publish(server, clients, n: int, room: str = "r1", video_codec=None):
    for i in range(n):
        c = server.client(f"peer{i}")
        clients.append(c)
        await c.connect()
        await join_room(c, room)
        await c.publish(
            [ToneTrack(300 + 100 * i), ColourTrack(COLOURS[i])], video_codec=video_codec
        )
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
async def test_everyone_receives_everyone(server, clients, n, forwarding_path):
    before = native_packets()
    await join_and_publish(server, clients, n)
    await check_everyone_sees_everyone(clients)
    # The media went through the path under test.
    assert (native_packets() > before) == (forwarding_path == "native")
    room = server.rooms.rooms["r1"]
    assert len(room.participants) == n
    await asyncio.sleep(1.2)  # metrics are flushed by the room ticker
    text = await _metrics(server)
    assert 'mediaserver_forwarded_packets_total{kind="video"}' in text


async def _metrics(server) -> str:
    import aiohttp

    async with aiohttp.ClientSession() as s, s.get(server.http_url + "/metrics") as r:
        return await r.text()


async def test_h264_is_forwarded(server, clients):
    await join_and_publish(server, clients, 2, video_codec="H264")
    await check_everyone_sees_everyone(clients)
    pubs = [
        pub
        for p in server.rooms.rooms["r1"].participants.values()
        for pub in p.publications.values()
        if pub.video
    ]
    assert [pub.track.codec for pub in pubs] == ["H264", "H264"]
    for c in clients:
        video = next(t for t in c.live_tracks() if t.kind == "video")
        t = next(x for x in c.subscriber.getTransceivers() if x.mid == video.mid)
        assert t._codecs[0].mimeType == "video/H264"


async def test_server_sendonly_receivers_hold_no_receiving_state(server, clients):
    """Issue 13 (memory): the receiver of each sendonly subscriber transceiver never
    starts, so the server drops its jitter buffer, decoder queue and the like; the
    publisher connections' receivers (started) keep theirs. Media flows regardless."""
    from mediaserver.sfu.peer import IDLE_RECEIVER_STATE

    await join_and_publish(server, clients, 2)
    await check_everyone_sees_everyone(clients)
    participants = list(server.rooms.rooms["r1"].participants.values())
    assert len(participants) == 2
    for p in participants:
        outgoing = p.subscriber.pc.getTransceivers()
        assert len(outgoing) == 2
        for t in outgoing:
            assert t.direction == "sendonly"
            assert t.currentDirection == "sendonly"
            assert not t.receiver._RTCRtpReceiver__started
            for name in IDLE_RECEIVER_STATE:
                assert getattr(t.receiver, name) is None, name
        incoming = p.publisher.pc.getTransceivers()
        assert incoming
        for t in incoming:
            assert t.receiver._RTCRtpReceiver__started
            assert t.receiver._RTCRtpReceiver__jitter_buffer is not None
            assert t.receiver._RTCRtpReceiver__decoder_queue is not None
            # its RTCP loop (receiver reports on streams aiortc receives: none, here)
            # is replaced by one that never wakes; stopping it still completes
            task = t.receiver._RTCRtpReceiver__rtcp_task
            assert "_quiet_receiver_rtcp" in task.get_coro().__qualname__
            assert not task.done()
    receiver = participants[0].publisher.pc.getTransceivers()[0].receiver
    await asyncio.wait_for(receiver.stop(), 5)
    assert receiver._RTCRtpReceiver__rtcp_task.done()


async def test_late_joiner_decodes_video_within_a_second(server, clients):
    await join_and_publish(server, clients, 2)
    await check_everyone_sees_everyone(clients)
    requests_before = server.metrics.keyframe_requests._value.get()

    late = server.client("late")
    clients.append(late)
    await late.connect()
    await join_room(late, "r1")
    offer = await late.wait_message("subscribe_offer", timeout=10)
    subscribed_at = asyncio.get_running_loop().time()
    assert len(offer["tracks"]) == 4
    tracks = await late.wait_for_tracks(4, timeout=10)
    colour_of = {c.participant_id: i for i, c in enumerate(clients[:2])}
    for t in tracks:
        if t.kind != "video":
            continue
        frames = await receive_frames(t.track, 1, timeout=5)
        elapsed = asyncio.get_running_loop().time() - subscribed_at
        assert closest_colour(mean_colour(frames[0])) == colour_of[t.participant_id]
        assert elapsed < 1.0, f"first frame of {t.participant_id} after {elapsed:.2f}s"
    # the server asked the publishers for keyframes for the newcomer
    assert server.metrics.keyframe_requests._value.get() > requests_before


async def test_leaver_tracks_end_on_the_others(server, clients):
    await join_and_publish(server, clients, 3)
    await check_everyone_sees_everyone(clients)
    leaver = clients[2]
    gone = leaver.participant_id
    await leaver.leave()
    for c in clients[:2]:
        theirs = [t for t in c.remote_tracks.values() if t.participant_id == gone]
        assert len(theirs) == 2
        for t in theirs:
            await asyncio.wait_for(t.ended.wait(), 10)
            with pytest.raises(MediaStreamError):
                await asyncio.wait_for(t.track.recv(), 5)
        await c.wait_for(lambda c=c: gone not in c.participants, timeout=5)
        # the remaining pair still exchange media
        live = [t for t in c.live_tracks() if t.kind == "video"]
        assert len(live) == 1
        await receive_frames(live[0].track, 3, timeout=5)
    assert gone not in server.rooms.rooms["r1"].participants


async def test_nack_rtx_recovers_dropped_packets(server, clients):
    await join_and_publish(server, clients, 2)
    await check_everyone_sees_everyone(clients)
    room = server.rooms.rooms["r1"]
    dropped: list[int] = []

    def drop_every_5th(seq: int) -> bool:
        if seq % 5 == 3:
            dropped.append(seq)
            return True
        return False

    outputs = [
        o
        for p in room.participants.values()
        for pub in p.publications.values()
        if pub.video
        for o in pub.forwarding.outputs
    ]
    assert len(outputs) == 2
    for o in outputs:
        o.drop_filter = drop_every_5th
    rtx_before = sum(o.rtx_sent for o in outputs)
    # Frames keep decoding with the right colours although 1 packet in 5 is dropped.
    await check_everyone_sees_everyone(clients)
    for c in clients:
        video = [t for t in c.live_tracks() if t.kind == "video"][0]
        frames = await receive_frames(video.track, 60, timeout=10)
        assert {closest_colour(mean_colour(f)) for f in frames[-10:]} == {
            [x.participant_id for x in clients].index(video.participant_id)
        }
    rtx_after = sum(o.rtx_sent for o in outputs)
    assert len(dropped) >= 20
    # every dropped packet was NACKed by the receiver and answered from the cache
    assert rtx_after - rtx_before >= len(dropped) * 0.8
    assert server.metrics.rtcp_feedback.labels("nack")._value.get() > 0


async def test_mute_stops_forwarding_and_unmute_resumes(server, clients):
    await join_and_publish(server, clients, 2)
    await check_everyone_sees_everyone(clients)
    a, b = clients
    video_pub = [p for p in a.publications if p["kind"] == "video"][0]
    pub = server.rooms.rooms["r1"].participants[a.participant_id].publications[video_pub["id"]]
    output = pub.forwarding.outputs[0]

    await a.set_muted(video_pub["id"], True)
    event = await b.wait_message("publication_muted", timeout=5)
    assert event["publication_id"] == video_pub["id"] and event["muted"] is True
    await asyncio.sleep(0.3)
    sent = output.packets
    await asyncio.sleep(1.0)
    assert output.packets == sent, "muted publication still forwarded"

    await a.set_muted(video_pub["id"], False)
    event = await b.wait_message("publication_muted", timeout=5)
    assert event["muted"] is False
    video = [t for t in b.live_tracks() if t.kind == "video"][0]
    await receive_frames(video.track, 40, timeout=10)  # drains old frames and gets new ones
    assert output.packets > sent


async def test_room_full_and_empty_room_closes(clients):
    from server_helpers import make_config, start_server

    srv = await start_server(make_config(max_participants=2, empty_timeout_seconds=0.5))
    try:
        for i in range(2):
            c = srv.client(f"p{i}")
            clients.append(c)
            await c.connect()
            await join_room(c, "small")
        third = srv.client("third")
        clients.append(third)
        await third.connect()
        with pytest.raises(ClientError) as err:
            await join_room(third, "small")
        assert err.value.code == "room_full"
        assert len(srv.rooms.rooms["small"].participants) == 2
        for c in clients[:2]:
            await c.leave()
        for _ in range(40):
            if "small" not in srv.rooms.rooms:
                break
            await asyncio.sleep(0.1)
        assert "small" not in srv.rooms.rooms
        assert srv.metrics.rooms._value.get() == 0
    finally:
        await srv.runner.cleanup()


async def test_port_range_and_announced_address(clients):
    import dataclasses

    from aiortc import sdp as aiortc_sdp
    from server_helpers import make_config, start_server

    from mediaserver.sfu.peer import configure_port_range

    config = make_config()
    config = dataclasses.replace(
        config,
        rtc=dataclasses.replace(config.rtc, port_min=41000, port_max=41050),
    )
    srv = await start_server(config)
    try:
        await join_and_publish(srv, clients, 2, room="ranged")
        await check_everyone_sees_everyone(clients)
        for c in clients:
            for pc in (c.publisher, c.subscriber):
                remote = aiortc_sdp.SessionDescription.parse(pc.remoteDescription.sdp)
                ports = {cand.port for m in remote.media for cand in m.ice_candidates}
                assert ports and all(41000 <= p <= 41050 for p in ports), ports
    finally:
        await srv.runner.cleanup()
        configure_port_range(0, 0)


def test_announced_address_rewrites_host_candidates():
    from mediaserver.sfu.negotiation import apply_announced_address

    sdp = "a=candidate:1 1 udp 2130706431 10.0.0.5 41000 typ host\r\n"
    assert "203.0.113.7 41000 typ host" in apply_announced_address(sdp, "203.0.113.7")


async def _reports_seen(clients: list) -> bool:
    for c in clients:
        for sender in c.publisher.getSenders():
            stats = await sender.getStats()
            if not any(s.type == "remote-inbound-rtp" for s in stats.values()):
                return False
        for receiver in c.subscriber.getReceivers():
            stats = await receiver.getStats()
            if not any(s.type == "remote-outbound-rtp" for s in stats.values()):
                return False
    return True


async def test_rtcp_reports_and_remb(server, clients):
    """Receiver reports reach publishers, sender reports with real NTP time reach
    subscribers, and subscribers' bandwidth estimates reach publishers as REMB."""
    import time

    await join_and_publish(server, clients, 2)
    await check_everyone_sees_everyone(clients)
    # reports are sent every ~1 s; under load the first ones can take longer: wait
    # (bounded) until every sender and receiver has seen one, then check their content
    for _ in range(150):
        if await _reports_seen(clients):
            break
        await asyncio.sleep(0.1)
    for c in clients:
        for sender in c.publisher.getSenders():
            stats = await sender.getStats()
            remote_inbound = [s for s in stats.values() if s.type == "remote-inbound-rtp"]
            assert remote_inbound, f"no receiver report reached {c.name}'s {sender.kind} sender"
        for receiver in c.subscriber.getReceivers():
            stats = await receiver.getStats()
            remote_outbound = [s for s in stats.values() if s.type == "remote-outbound-rtp"]
            assert remote_outbound, f"no sender report reached {c.name}'s {receiver.track.kind}"
            # the NTP time is the publisher's wall clock, not aiortc's zeros
            ts = remote_outbound[0].remoteTimestamp.timestamp()
            assert abs(ts - time.time()) < 5
            assert remote_outbound[0].packetsSent > 0
    pubs = [
        pub
        for p in server.rooms.rooms["r1"].participants.values()
        for pub in p.publications.values()
        if pub.video
    ]
    for _ in range(80):  # aiortc receivers send their first estimate after a few seconds
        if all(pub.last_remb_sent for pub in pubs):
            break
        await asyncio.sleep(0.1)
    assert all(pub.last_remb_sent for pub in pubs), "no REMB sent to a video publisher"
    assert server.metrics.rtcp_feedback.labels("remb")._value.get() > 0


async def test_subscriber_connection_is_renewed_after_much_churn(server, clients, monkeypatch):
    from mediaserver.sfu import subscribing as subscribing_module

    monkeypatch.setattr(subscribing_module, "MAX_INACTIVE_MLINES", 2)
    observer = server.client("observer")
    clients.append(observer)
    await observer.connect()
    await join_room(observer, "churn")
    for i in range(3):  # each leaves two inactive m-lines behind on the observer
        guest = server.client(f"guest{i}")
        await guest.connect()
        await join_room(guest, "churn")
        await guest.publish([ToneTrack(), ColourTrack(COLOURS[i])])
        await observer.wait_for_tracks(2, timeout=15)
        await guest.leave()
        await observer.wait_for(lambda: not observer.live_tracks(), timeout=15)
    last = server.client("last")
    clients.append(last)
    await last.connect()
    await join_room(last, "churn")
    await last.publish([ToneTrack(), ColourTrack(COLOURS[4])])
    tracks = await observer.wait_for_tracks(2, timeout=15)
    video = next(t for t in tracks if t.kind == "video")
    frames = await receive_frames(video.track, 5, timeout=10)
    assert closest_colour(mean_colour(frames[-1])) == 4
    offers = [e for e in observer.events if e["type"] == "subscribe_offer"]
    assert any(o.get("restart") for o in offers), "the subscriber connection was never renewed"
    assert offers[-1]["sdp"].count("m=") <= 4  # bounded, not growing with every leave
