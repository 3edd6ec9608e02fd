"""Issue 10, "Anonymous abuse": each attack against a real ``mediaserver serve`` process.

Media checks count packets at a real aiortc subscriber (``signalling_probe.MediaPair``);
they never assert on durations (the probe, run as a script, measures those).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from server_helpers import join_room, room_token

from mediaserver.client.sdk import MeetingClient
from mediaserver.config import load_config
from mediaserver.sfu.peer import IdleTrack

from .signalling_probe import REPO, MediaPair, RawConn, bomb_offer, server_process, wait_until

pytestmark = pytest.mark.integration


async def _real_offer() -> str:
    from aiortc import RTCPeerConnection

    from mediaserver.sfu.peer import make_configuration

    pc = RTCPeerConnection(make_configuration())
    pc.addTransceiver(IdleTrack("audio"), direction="sendonly")
    pc.addTransceiver(IdleTrack("video"), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return str(sdp)


async def test_sdp_bomb_is_refused_and_media_keeps_flowing(tmp_path: Path):
    async with server_process(tmp_path) as server:
        pair = MediaPair(server.ws_url, "victims")
        conns: list[RawConn] = []
        try:
            await pair.start()
            conns = [await RawConn.open(server.ws_url, room=f"bomb{i}") for i in range(20)]
            loop = asyncio.get_running_loop()
            start = loop.time()
            offer = bomb_offer(700)
            await asyncio.gather(*(c.send({"type": "publish", "sdp": offer}) for c in conns))
            replies = await asyncio.gather(
                *(c.recv_type("publish_answer", "error", timeout=60) for c in conns)
            )
            assert {(r["type"], r.get("code")) for r in replies} == {("error", "invalid_sdp")}
            assert all("more than 32 m-lines" in r["message"] for r in replies)
            await asyncio.sleep(1.0)
            # media between the two real peers kept arriving through the attack
            assert pair.arrivals.count(start, loop.time()) > 50
        finally:
            for c in conns:
                await c.close()
            await pair.close()


async def test_duplicate_mids_are_invalid_sdp_not_internal_error(tmp_path: Path):
    async with server_process(tmp_path) as server:
        conn = await RawConn.open(server.ws_url, room="dup")
        try:
            offer = (await _real_offer()).replace("a=mid:1", "a=mid:0")
            await conn.send({"type": "publish", "sdp": offer, "id": 7})
            reply = await conn.recv_type("publish_answer", "error")
            assert reply["code"] == "invalid_sdp" and reply["ref"] == 7
            assert "duplicate a=mid '0'" in reply["message"]
            await conn.send({"type": "ping", "id": 8})  # the connection is still usable
            assert (await conn.recv_type("pong"))["ref"] == 8
        finally:
            await conn.close()


async def test_ping_flood_is_rate_limited_then_closed(tmp_path: Path):
    toml = "[signalling]\nmessage_burst = 20\nmessages_per_second = 5.0\n"
    toml += "rate_limited_close_after = 30\n"
    async with server_process(tmp_path, toml) as server:
        flood = await RawConn.open(server.ws_url, room="flood")
        bystander = await RawConn.open(server.ws_url, room="flood")
        try:
            for i in range(2000):
                if flood.ws.closed:
                    break
                await flood.send({"type": "ping", "id": i})
            got: dict[str, int] = {}
            while (msg := await flood.recv()) is not None:
                key = msg.get("code", msg["type"])
                got[key] = got.get(key, 0) + 1
            assert got.get("rate_limited") == 30, got
            assert got.get("pong", 0) <= 22, got  # the burst (plus refill), no more
            assert flood.ws.close_code == 1008
            await bystander.send({"type": "ping", "id": "b"})  # others are unaffected
            assert (await bystander.recv_type("pong"))["ref"] == "b"
        finally:
            await flood.close()
            await bystander.close()


async def test_too_many_sockets_from_one_address_are_refused(tmp_path: Path):
    toml = "[signalling]\nmax_connections_per_address = 3\n"
    async with server_process(tmp_path, toml) as server:
        conns = [await RawConn.open(server.ws_url) for _ in range(3)]
        try:
            async with aiohttp.ClientSession() as s, s.ws_connect(server.ws_url) as ws:
                msg = await ws.receive_json(timeout=10)
                assert msg["code"] == "too_many_connections"
                await ws.receive(timeout=10)
                assert ws.closed and ws.close_code == 1008
            await conns[0].close()  # a slot is free again
            await asyncio.sleep(0.2)
            conns[0] = await RawConn.open(server.ws_url)
        finally:
            for c in conns:
                await c.close()


async def test_joining_in_a_loop_is_rate_limited_per_address(tmp_path: Path):
    """Each join costs the node a participant and a peer connection: one address that
    joins and leaves in a loop is refused after the burst; another address is not."""
    toml = "[signalling]\njoin_burst_per_address = 3\njoins_per_minute_per_address = 1.0\n"
    async with server_process(tmp_path, toml) as server:
        codes = []
        for i in range(5):
            conn = await RawConn.open(server.ws_url)
            try:
                token = room_token("loop", f"j{i}")
                await conn.send({"type": "join", "room": "loop", "token": token, "id": i})
                reply = await conn.recv_type("joined", "error")
                codes.append(reply.get("code", reply["type"]))
                if reply["type"] == "error":
                    assert reply["retry_after"] > 0 and reply["ref"] == i, reply
            finally:
                await conn.close()
        assert codes == ["joined"] * 3 + ["rate_limited"] * 2, codes
        other = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with aiohttp.ClientSession(connector=other) as s, s.ws_connect(server.ws_url) as ws:
            await ws.send_json({"type": "hello", "version": 1})
            await ws.send_json({"type": "join", "room": "loop", "token": room_token("loop", "o")})
            replies = [await ws.receive_json(timeout=10) for _ in range(2)]
            assert [r["type"] for r in replies] == ["welcome", "joined"], replies


async def test_publish_churn_is_rate_limited_and_others_keep_their_media(tmp_path: Path):
    toml = "[signalling]\npublish_burst = 2\npublishes_per_minute = 1.0\n"
    async with server_process(tmp_path, toml) as server:
        pair = MediaPair(server.ws_url, "churn")
        try:
            await pair.start()
            churner = await RawConn.open(server.ws_url, room="limit")
            offer = await _real_offer()
            codes = []
            for i in range(3):
                await churner.send({"type": "publish", "sdp": offer, "id": i})
                reply = await churner.recv_type("publish_answer", "error")
                codes.append(reply.get("code", reply["type"]))
            assert codes == ["publish_answer", "publish_answer", "rate_limited"], codes
            await churner.close()
            # Join, publish, leave, nine times in the pair's room: each leaves two inactive
            # m-lines at the subscriber, so its subscriber connection is replaced (after
            # 16), and that replacement must not interrupt the pair's media.
            loop = asyncio.get_running_loop()
            start = loop.time()
            events = pair.subscriber.events
            sub = pair.subscriber
            for i in range(20):  # 9 are enough when each guest's tracks reached the pair
                if any(e.get("restart") for e in events):
                    break
                guest = MeetingClient(server.ws_url, name=f"g{i}", ice_addresses=["127.0.0.1"])
                await guest.connect()
                await join_room(guest, "churn")
                await guest.publish([IdleTrack("audio"), IdleTrack("video")])
                gid = guest.participant_id
                await wait_until(
                    lambda g=gid: any(t.participant_id == g for t in sub.remote_tracks.values()), 20
                )
                await guest.leave()
            await wait_until(lambda: any(e.get("restart") for e in events), 30)  # replaced
            restarted = loop.time()
            await asyncio.sleep(3.0)
            end = loop.time()
            windows = [
                pair.arrivals.count(t, t + 0.5)
                for t in (start + k * 0.5 for k in range(200))
                if t + 0.5 <= end
            ]
            assert min(windows) > 0, windows  # some media in every half second
            assert pair.arrivals.count(restarted + 1.0, end) > 100  # and on the new connection
            # make before break: the old connection still delivered after the new one began
            old, new = list(pair.arrivals.by_connection.values())[:2]
            assert new and sum(1 for t in old if t >= new[0]) > 0
        finally:
            await pair.close()


async def test_early_ice_candidates_log_a_few_lines_only(tmp_path: Path):
    async with server_process(tmp_path) as server:
        pair = MediaPair(server.ws_url, "logs")
        conn = None
        try:
            await pair.start()
            conn = await RawConn.open(server.ws_url, room="logs")
            await conn.recv_type("subscribe_offer")  # never answered
            cand = {"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host"}
            for _ in range(40):
                await conn.send(
                    {"type": "ice_candidate", "target": "subscriber", "candidate": {**cand}}
                )
            await conn.send({"type": "ping", "id": "done"})
            await conn.recv_type("pong")
            await asyncio.sleep(0.5)
        finally:
            if conn is not None:
                await conn.close()
            await pair.close()
        text = server.log.read_text()
        assert 1 <= text.count("ice candidate before remote description") <= 5
        assert "addIceCandidate called without remote description" not in text


async def test_metrics_are_off_the_public_listener_in_the_shipped_config(tmp_path: Path):
    shipped = load_config(REPO / "config.toml", env={}).metrics.listen_address
    assert shipped is not None and shipped[0] == "127.0.0.1"  # off the public listener
    # the same, on a free port (9090 may be taken on a shared machine)
    env = {"MEDIASERVER_METRICS_LISTEN": f"{shipped[0]}:{{metrics_port}}"}
    env["MEDIASERVER_STATE_BACKEND"] = "memory"
    async with (
        server_process(tmp_path, config=REPO / "config.toml", env=env) as server,
        aiohttp.ClientSession() as s,
    ):
        async with s.get(server.http_url + "/metrics") as r:
            assert r.status == 404
        async with s.get(f"http://127.0.0.1:{server.metrics_port}/metrics") as r:
            assert r.status == 200 and "mediaserver_rooms" in await r.text()
    token = "t" * 24
    env = {"MEDIASERVER_METRICS_LISTEN": "", "MEDIASERVER_METRICS_BEARER_TOKEN": token}
    env["MEDIASERVER_STATE_BACKEND"] = "memory"
    async with (
        server_process(tmp_path, config=REPO / "config.toml", env=env) as server,
        aiohttp.ClientSession() as s,
    ):
        async with s.get(server.http_url + "/metrics") as r:
            assert r.status == 401
        bad = {"Authorization": "Bearer " + "x" * 24}
        async with s.get(server.http_url + "/metrics", headers=bad) as r:
            assert r.status == 401
        good = {"Authorization": f"Bearer {token}"}
        async with s.get(server.http_url + "/metrics", headers=good) as r:
            assert r.status == 200
