"""ICE consent on the server is passive (mediaserver/sfu/ice_sockets.py): the client's
own consent checks keep the connection; the server sends none; a client that stops
checking is dropped; the checks on the established pair are answered without aioice
(stun_binding.py), on a connection's own socket and on the shared media port. Real
aioice agents over this machine's IPv4 host candidates, with the intervals shortened."""

from __future__ import annotations

import asyncio
from typing import Any

import aioice.ice
import pytest
from ice_pair import introduce

from mediaserver.sfu import ice_sockets, peer, udpmux  # noqa: F401  (peer: the patches)


@pytest.fixture
def short_intervals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.05)  # the client checks often
    monkeypatch.setattr(ice_sockets, "CONSENT_TIMEOUT", 0.5)


async def _pair() -> tuple[aioice.ice.Connection, ice_sockets.ServerConnection]:
    client = aioice.ice.Connection(ice_controlling=True, components=1, use_ipv6=False)
    with ice_sockets.server_side():
        server = ice_sockets.ServerConnection(ice_controlling=False, components=1, use_ipv6=False)
    await introduce(client, server)
    return client, server


def _count_requests(conn: aioice.ice.Connection) -> list[Any]:
    seen: list[Any] = []
    original = conn.request_received

    def counting(message: Any, addr: Any, protocol: Any) -> None:
        seen.append(message)
        original(message, addr, protocol)

    conn.request_received = counting  # type: ignore[method-assign]
    return seen


async def test_the_clients_checks_keep_consent_and_the_server_sends_none(short_intervals):
    client, server = await _pair()
    try:
        async with asyncio.timeout(10):
            await asyncio.gather(client.connect(), server.connect())
        to_client = _count_requests(client)
        first = server.consent_at
        await asyncio.sleep(1.5)  # three times the timeout
        assert server.consent_at > first  # renewed by the client's checks
        assert not server._closed
        await client.send(b"still here")
        assert await asyncio.wait_for(server.recv(), 5) == b"still here"
        assert to_client == []  # no check from the server in 1.5 s (aioice: ~30)
    finally:
        await client.close()
        await server.close()


@pytest.fixture(params=["own socket", "media port"])
async def mux(request: pytest.FixtureRequest):
    if request.param == "own socket":
        yield None
        return
    addresses = aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False)
    shared = udpmux.UdpMux(0, addresses[:1])  # port 0: one free port
    await shared.start()
    ice_sockets.configure_udp_mux(shared)
    try:
        yield shared
    finally:
        ice_sockets.configure_udp_mux(None)
        shared.close()


async def test_checks_on_the_established_pair_are_answered_without_aioice(short_intervals, mux):
    client, server = await _pair()
    try:
        async with asyncio.timeout(10):
            await asyncio.gather(client.connect(), server.connect())
        if mux is not None:
            assert all(isinstance(p, ice_sockets._MuxProtocol) for p in server._protocols)
        answered = ice_sockets.answered_checks[0]
        through_aioice = _count_requests(server)
        first = server.consent_at
        await asyncio.sleep(0.6)  # > 6 client checks: aioice's client closes after 6 failures
        assert ice_sockets.answered_checks[0] - answered >= 5
        assert through_aioice == []
        assert server.consent_at > first
        assert not client._closed  # every answer was valid for the client
        await client.send(b"still here")
        assert await asyncio.wait_for(server.recv(), 5) == b"still here"
    finally:
        await client.close()
        await server.close()


async def test_checks_the_fast_path_does_not_take_still_reach_aioice(short_intervals, mux):
    """A check signed with another password goes to aioice (which answers 401, unsigned:
    the sender drops it); the connection is unaffected."""
    client, server = await _pair()
    try:
        async with asyncio.timeout(10):
            await asyncio.gather(client.connect(), server.connect())
        through_aioice = _count_requests(server)
        pair = next(iter(client._nominated.values()))
        bad = client.build_request(pair, nominate=False)
        answered = ice_sockets.answered_checks[0]
        bad.add_message_integrity(b"not the password")
        pair.protocol.send_stun(bad, pair.remote_addr)
        await asyncio.sleep(0.2)
        assert [m.transaction_id for m in through_aioice] == [bad.transaction_id]
        assert ice_sockets.answered_checks[0] > answered  # the client's own checks meanwhile
        await asyncio.sleep(0.2)
        assert not server._closed and not client._closed
    finally:
        await client.close()
        await server.close()


async def test_a_client_that_stops_checking_is_dropped(short_intervals):
    client, server = await _pair()
    try:
        async with asyncio.timeout(10):
            await asyncio.gather(client.connect(), server.connect())
        client._query_consent_task.cancel()  # gone: no more checks (and no close)
        async with asyncio.timeout(5):  # the timeout is 0.5 s
            event = await server.get_event()
        assert isinstance(event, aioice.ice.ConnectionClosed)  # as aioice closes it
        assert server._closed
    finally:
        await client.close()
        await server.close()


async def test_outside_the_server_consent_stays_active(short_intervals):
    """A ServerConnection made outside ``server_side()`` (an SDK peer with a port range)
    keeps aioice's active checks."""
    sdk = ice_sockets.ServerConnection(ice_controlling=True, components=1, use_ipv6=False)
    assert not sdk._server
    other = aioice.ice.Connection(ice_controlling=False, components=1, use_ipv6=False)
    try:
        await introduce(sdk, other)
        async with asyncio.timeout(10):
            await asyncio.gather(sdk.connect(), other.connect())
        to_other = _count_requests(other)
        await asyncio.sleep(0.5)
        assert len(to_other) >= 3  # its checks, every ~50 ms
    finally:
        for conn in (sdk, other):
            await conn.close()
