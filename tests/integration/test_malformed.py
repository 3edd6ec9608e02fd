"""Every malformed input gets an error with a code; the room and its media are unaffected."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from media import COLOURS, ColourTrack, ToneTrack, closest_colour, mean_colour, receive_frames
from server_helpers import join_room, room_token

pytestmark = pytest.mark.integration


class RawSocket:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, payload: object) -> None:
        if isinstance(payload, bytes):
            await self.ws.send_bytes(payload)
        elif isinstance(payload, str):
            await self.ws.send_str(payload)
        else:
            await self.ws.send_str(json.dumps(payload))

    async def recv(self, timeout: float = 5.0) -> dict:
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, f"socket closed: {msg}"
        return json.loads(msg.data)

    async def expect_error(self, payload: object, code: str, *, mentions: str = "") -> dict:
        await self.send(payload)
        while True:
            reply = await self.recv()
            if reply["type"] in (
                "participant_joined",
                "participant_left",
                "publications_added",
                "subscribe_offer",
                "speaking_stats",  # room statistics arrive every 2 s
                "active_speaker",
                "publication_muted",
            ):
                continue
            break
        assert reply["type"] == "error", f"{payload!r:.120} -> {reply!s:.300}"
        assert reply["code"] == code, f"{payload!r:.120} -> {reply}"
        assert mentions in reply["message"], reply
        return reply


def _valid_sdp_lines(sdp: str) -> list[str]:
    return sdp.replace("\r\n", "\n").strip().split("\n")


async def test_malformed_inputs_get_errors_and_room_keeps_working(server, clients):
    # A room with two peers exchanging media.
    for i in range(2):
        c = server.client(f"peer{i}")
        clients.append(c)
        await c.connect()
        await join_room(c, "r1")
        await c.publish([ToneTrack(), ColourTrack(COLOURS[i])])
    for c in clients:
        await c.wait_for_tracks(2)
    valid_offer_sdp = clients[0].publisher.localDescription.sdp

    async with aiohttp.ClientSession() as session, session.ws_connect(server.ws_url) as ws:
        s = RawSocket(ws)
        # before hello
        await s.expect_error("{", "bad_json")
        await s.expect_error(b"\xff\xfe\x00garbage", "bad_json")
        await s.expect_error("[1, 2]", "bad_message")
        await s.expect_error({"no_type": 1}, "missing_field", mentions="type")
        await s.expect_error({"type": "dance"}, "unknown_type", mentions="dance")
        await s.expect_error({"type": "join", "room": "r1", "name": "x"}, "hello_required")
        await s.expect_error({"type": "hello", "version": 99}, "unsupported_version")
        await s.expect_error({"type": "hello", "version": "1"}, "invalid_field", mentions="version")
        await s.expect_error({"type": "hello"}, "missing_field", mentions="version")
        await s.expect_error({"type": "hello", "version": 1, "x": 1}, "unknown_field", mentions="x")
        await s.send({"type": "hello", "version": 1, "id": "h"})
        assert (await s.recv())["type"] == "welcome"
        await s.expect_error({"type": "hello", "version": 1}, "bad_state")
        # oversize frame
        await s.expect_error({"type": "ping", "pad": "x" * 70_000}, "message_too_large")
        # join
        await s.expect_error({"type": "join", "room": "r1"}, "token_required")
        await s.expect_error({"type": "join", "room": "r1", "token": ""}, "invalid_field")
        await s.expect_error(
            {"type": "join", "room": "r1", "token": "t", "invite": "i"}, "invalid_field"
        )
        await s.expect_error({"type": "join", "name": "x"}, "missing_field", mentions="room")
        await s.expect_error(
            {"type": "join", "room": 5, "name": "x"}, "invalid_field", mentions="room"
        )
        await s.expect_error({"type": "join", "room": "a b", "name": "x"}, "invalid_field")
        await s.expect_error({"type": "join", "room": "r1", "name": ""}, "invalid_field")
        await s.expect_error({"type": "join", "room": "r1", "name": "a\x07b"}, "invalid_field")
        await s.expect_error({"type": "join", "room": "r1", "name": "n" * 65}, "invalid_field")
        await s.expect_error(
            {"type": "join", "room": "r1", "name": "x", "role": "host"}, "unknown_field"
        )
        # not joined yet
        for msg in (
            {"type": "publish", "sdp": valid_offer_sdp},
            {"type": "subscribe_answer", "sdp": "v=0"},
            {"type": "ice_candidate", "target": "publisher", "candidate": None},
            {"type": "mute", "publication_id": "PU_x", "muted": True},
        ):
            await s.expect_error(msg, "not_joined")
        await s.send({"type": "join", "room": "r1", "token": room_token("r1", "mallory"), "id": 7})
        joined = await s.recv()
        assert joined["type"] == "joined" and joined["ref"] == 7
        await s.expect_error({"type": "join", "room": "r1", "name": "again"}, "already_joined")
        # publish
        await s.expect_error({"type": "publish"}, "missing_field", mentions="sdp")
        await s.expect_error({"type": "publish", "sdp": 12}, "invalid_field")
        await s.expect_error({"type": "publish", "sdp": "hello"}, "invalid_sdp")
        await s.expect_error({"type": "publish", "sdp": "v=0\r\nm=audio"}, "invalid_sdp")
        lines = _valid_sdp_lines(valid_offer_sdp)
        no_fp = "\r\n".join(ln for ln in lines if not ln.startswith("a=fingerprint")) + "\r\n"
        await s.expect_error(
            {"type": "publish", "sdp": no_fp}, "invalid_sdp", mentions="fingerprint"
        )
        no_ice = "\r\n".join(ln for ln in lines if not ln.startswith("a=ice-pwd")) + "\r\n"
        await s.expect_error({"type": "publish", "sdp": no_ice}, "invalid_sdp")
        app = valid_offer_sdp.replace("m=audio", "m=application", 1)
        await s.expect_error({"type": "publish", "sdp": app}, "invalid_sdp")
        # subscribe_answer
        await s.expect_error({"type": "subscribe_answer", "sdp": "v=0\r\n"}, "invalid_sdp")
        await s.expect_error(
            {"type": "subscribe_answer", "sdp": "v=0", "revision": True}, "invalid_field"
        )
        # ice_candidate
        await s.expect_error(
            {"type": "ice_candidate", "target": "x", "candidate": None}, "invalid_field"
        )
        await s.expect_error(
            {"type": "ice_candidate", "target": "publisher", "candidate": {"candidate": 5}},
            "invalid_field",
        )
        await s.expect_error({"type": "ice_candidate", "target": "publisher"}, "missing_field")
        await s.expect_error(
            {"type": "ice_candidate", "target": "subscriber", "candidate": {"candidate": "junk"}},
            "invalid_field",
        )
        # mute
        await s.expect_error(
            {"type": "mute", "publication_id": "PU_nope", "muted": True}, "not_found"
        )
        other_pub = clients[0].publications[0]["id"]
        await s.expect_error(
            {"type": "mute", "publication_id": other_pub, "muted": True}, "not_found"
        )
        await s.expect_error(
            {"type": "mute", "publication_id": other_pub, "muted": "yes"}, "invalid_field"
        )
        # leave / ping
        await s.expect_error({"type": "leave", "now": True}, "unknown_field")
        reply = await s.expect_error({"type": "ping", "id": [1]}, "invalid_field", mentions="id")
        assert "ref" not in reply  # an invalid id is not echoed
        await s.expect_error({"type": "ping", "id": True}, "invalid_field", mentions="id")
        # the size limit counts bytes, not characters
        await s.expect_error({"type": "ping", "pad": "\u00e9" * 40_000}, "message_too_large")

        # The malformed connection is still usable...
        await s.send({"type": "ping", "id": "p"})
        while (reply := await s.recv())["type"] != "pong":
            pass
        assert reply["ref"] == "p"
        # ...and nothing happened to the room or its media.
        room = server.rooms.rooms["r1"]
        assert len(room.participants) == 3
        assert all(not p.publications for p in room.participants.values() if p.name == "mallory")
        for i, c in enumerate(clients):
            video = [t for t in c.live_tracks() if t.kind == "video"][0]
            frames = await receive_frames(video.track, 10, timeout=10)
            assert closest_colour(mean_colour(frames[-1])) == 1 - i
            assert not c.errors
        await asyncio.sleep(0)


async def test_too_many_publications_is_refused_before_anything_changes(server, clients):
    from aiortc import RTCPeerConnection

    from mediaserver.sfu.peer import make_configuration

    watcher = server.client("watcher")
    clients.append(watcher)
    await watcher.connect()
    await join_room(watcher, "r1")
    async with aiohttp.ClientSession() as session, session.ws_connect(server.ws_url) as ws:
        s = RawSocket(ws)
        await s.send({"type": "hello", "version": 1})
        await s.recv()
        await s.send({"type": "join", "room": "r1", "token": room_token("r1", "greedy")})
        await s.recv()
        pc = RTCPeerConnection(make_configuration())
        try:
            for _ in range(5):  # the default limit is 4
                pc.addTransceiver(ColourTrack(COLOURS[0]), direction="sendonly")
            await pc.setLocalDescription(await pc.createOffer())
            reply = await s.expect_error(
                {"type": "publish", "sdp": pc.localDescription.sdp}, "too_many_publications"
            )
            assert "at most 4" in reply["message"]
        finally:
            await pc.close()
        greedy = [p for p in server.rooms.rooms["r1"].participants.values() if p.name == "greedy"]
        assert greedy[0].publisher is None and not greedy[0].publications
        await asyncio.sleep(0.3)
        assert not [e for e in watcher.events if e["type"] == "publications_added"]


async def test_connection_that_never_joins_is_closed():
    import dataclasses

    from server_helpers import make_config, start_server

    config = make_config()
    config = dataclasses.replace(
        config, signalling=dataclasses.replace(config.signalling, join_timeout_seconds=0.5)
    )
    srv = await start_server(config)
    try:
        async with aiohttp.ClientSession() as session, session.ws_connect(srv.ws_url) as ws:
            s = RawSocket(ws)
            await s.send({"type": "hello", "version": 1})
            assert (await s.recv())["type"] == "welcome"
            reply = await s.recv(timeout=5)
            assert reply["type"] == "error" and reply["code"] == "join_timeout"
            closing = await ws.receive(timeout=5)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    finally:
        await srv.runner.cleanup()


async def test_a_subscribe_answer_may_exceed_the_message_limit_by_its_offers_bound(clients):
    """With max_message_bytes at 6144, every publish offer (one audio + video publisher)
    fits but the answer to the server's offer of three publishers' tracks (6 m-lines,
    ~9 KB) does not: it still goes through, since an answer is bounded by the offer it
    answers (the offers grow with the room). Any other message of that size is refused."""
    import dataclasses

    from server_helpers import make_config, serving

    config = make_config()
    config = dataclasses.replace(
        config, signalling=dataclasses.replace(config.signalling, max_message_bytes=6144)
    )
    async with serving(config) as srv:
        pubs = [srv.client(f"pub{i}") for i in range(3)]
        sub = srv.client("sub")
        clients.extend([*pubs, sub])
        for c in (*pubs, sub):
            await c.connect()
            await join_room(c, "big-answers")
        for i, pub in enumerate(pubs):
            await pub.publish([ToneTrack(440 + i), ColourTrack(COLOURS[i])])
        tracks = await sub.wait_for_tracks(6, timeout=30)  # the answers were applied
        assert sorted(t.kind for t in tracks) == ["audio"] * 3 + ["video"] * 3
        room = srv.rooms.rooms["big-answers"]
        me = next(p for p in room.participants.values() if p.name == "sub")
        for _ in range(100):  # the SDK has the tracks before its answer reaches us
            if not me.negotiation.outstanding:
                break
            await asyncio.sleep(0.1)
        assert not me.negotiation.outstanding, "the answer was not applied"
        assert me.subscriber is not None and me.subscriber.offered_mlines == 6
        await sub.send({"type": "ping", "pad": "x" * 7000})  # refused before parsing: no ref
        await sub.wait_for(lambda: any(e["code"] == "message_too_large" for e in sub.errors))
        assert [e["code"] for e in sub.errors] == ["message_too_large"]
