"""The direct receive path (issue 13) with real aiortc peers over loopback: once DTLS is
connected, the server's inbound SRTP/SRTCP skips aiortc's queue and DTLS task
(`sfu/rxpath.py`), with one socket per connection (no `rtc.udp_port`, no port range)
and on the shared media port (`rtc.udp_port`), on both forwarding paths (native
unprotect + native route, and the pure-Python twins)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from media import receive_frames
from server_helpers import make_config, start_server
from test_media import check_everyone_sees_everyone, join_and_publish
from test_udp_port import free_udp_port

from mediaserver.sfu import fastpath, peer, rxpath
from mediaserver.sfu.ice_sockets import ServerConnection, configure_udp_mux
from mediaserver.sfu.publication import Publication

pytestmark = pytest.mark.integration


@pytest.fixture(params=["native", "python"])
def forwarding_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "native" and fastpath.PATH != "native":
        pytest.skip(f"native path not active: {fastpath.REASON}")
    monkeypatch.setattr(fastpath, "PATH", request.param)
    return str(request.param)


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """RTP packets that still came through aiortc's queue (the old path)."""
    count = [0]
    original = peer.PublisherPeer._handle_rtp_data

    async def counting(self: peer.PublisherPeer, data: bytes, arrival_time_ms: int) -> None:
        count[0] += 1
        await original(self, data, arrival_time_ms)

    monkeypatch.setattr(peer.PublisherPeer, "_handle_rtp_data", counting)
    return count


def _counts() -> tuple[int, int]:
    st = rxpath.status()
    return int(str(st["direct_rtp_packets"])), int(str(st["direct_rtcp_packets"]))


async def _healthz(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(url + "/healthz") as r:
        body: dict[str, Any] = await r.json()
        return body


def _server_connections(srv: Any) -> list[Any]:
    found = []
    for p in srv.rooms.rooms["rx"].participants.values():
        for pc in (p.publisher, p.subscriber):
            if pc is not None and pc._dtls is not None:
                found.append(pc._dtls.transport._connection)
    return found


@pytest.mark.parametrize("udp_port", [False, True], ids=["own-sockets", "udp-port"])
async def test_media_takes_the_direct_path(clients, forwarding_path, queued, udp_port):
    config = make_config()
    if udp_port:
        rtc = dataclasses.replace(config.rtc, udp_port=free_udp_port())
        config = dataclasses.replace(config, rtc=rtc)
    srv = await start_server(config)
    rtp_before, rtcp_before = _counts()
    sent_before = int(str(fastpath.status()["native_packets"]))
    try:
        await join_and_publish(srv, clients, 2, room="rx")
        await check_everyone_sees_everyone(clients)
        await asyncio.sleep(1.5)  # receiver reports / REMB from the subscribers
        rtp, rtcp = _counts()
        rtp -= rtp_before
        rtcp -= rtcp_before
        assert rtp > 100, rtp
        assert rtcp > 0  # publishers' sender reports, subscribers' feedback
        assert queued[0] <= max(5, rtp // 50), (queued[0], rtp)  # only before the handshake
        native_sent = int(str(fastpath.status()["native_packets"])) - sent_before
        assert (native_sent > 0) == (forwarding_path == "native")
        connections = _server_connections(srv)
        assert len(connections) == 4
        for conn in connections:
            assert isinstance(conn, ServerConnection) and conn.direct_rx is not None
            assert (conn._mux is not None) == udp_port
        for p in srv.rooms.rooms["rx"].participants.values():
            # aiortc clients negotiate AES-GCM: the native path protects their RTP itself
            tx = p.subscriber._tx_srtp
            assert tx is not None and tx.native == (forwarding_path == "native")
            assert (p.subscriber.native_target is not None) == (forwarding_path == "native")
            if tx.native:
                assert p.subscriber.native_target.aead
        health = (await _healthz(srv.http_url))["forwarding"]
        assert health["srtp_protect"] == (
            "native-aead" if forwarding_path == "native" else "libsrtp"
        )
        assert health["direct_receive"] == "on"
        assert health["direct_receive_connections"] >= 4
        assert health["unprotect"] == fastpath.UNPROTECT
    finally:
        await srv.runner.cleanup()
        configure_udp_mux(None)


async def test_lost_publisher_packets_are_nacked_and_repaired(
    clients, forwarding_path, monkeypatch
):
    """Packets dropped on the direct path before the server sees them: the server NACKs
    the publisher (sent synchronously from on_rtp) and its RTX answers arrive on the
    direct path too, so the subscriber's video keeps decoding."""
    dropped = [0]
    video_pts: set[int] = set()
    make_receive = rxpath.publisher_receive

    def lossy(*args: Any, **kwargs: Any) -> Callable[[bytes], None]:
        receive = make_receive(*args, **kwargs)
        seen = [0]

        def drop_some(data: bytes) -> None:
            # every 10th video packet (the RTP header is clear in SRTP), after the start
            if len(data) > 12 and data[1] & 0x7F in video_pts:
                seen[0] += 1
                if seen[0] > 20 and seen[0] % 10 == 0 and dropped[0] < 20:
                    dropped[0] += 1
                    return
            receive(data)

        return drop_some

    monkeypatch.setattr(rxpath, "publisher_receive", lossy)
    repairs = [0]
    on_rtx = Publication.on_rtx

    def counting_rtx(self: Publication, data: bytes, now: float) -> None:
        repairs[0] += 1
        on_rtx(self, data, now)

    monkeypatch.setattr(Publication, "on_rtx", counting_rtx)
    srv = await start_server(make_config())
    try:
        await join_and_publish(srv, clients, 2, room="rx")
        for p in srv.rooms.rooms["rx"].participants.values():
            video_pts.update(pub.track.payload_type for pub in p.publications.values() if pub.video)
        await check_everyone_sees_everyone(clients)
        for t in clients[0].live_tracks():
            if t.kind == "video":
                await receive_frames(t.track, 30, timeout=15)
        pubs = [
            pub
            for p in srv.rooms.rooms["rx"].participants.values()
            for pub in p.publications.values()
            if pub.video
        ]
        await asyncio.sleep(0.5)
        assert dropped[0] >= 3
        assert repairs[0] >= dropped[0] // 2, (repairs[0], dropped[0])
        lost = sum(pub.stats.cumulative_lost for pub in pubs if pub.stats is not None)
        assert lost <= dropped[0] // 2, (lost, dropped[0])
    finally:
        await srv.runner.cleanup()
