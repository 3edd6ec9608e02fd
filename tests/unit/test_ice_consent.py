"""ICE consent on the server is passive (mediaserver/sfu/ice_sockets.py): the client's
own consent checks keep the connection; the server sends none; a client that stops
checking is dropped. Real aioice agents over this machine's IPv4 host candidates, with
the intervals shortened."""

from __future__ import annotations

import asyncio
from typing import Any

import aioice.ice
import pytest

from mediaserver.sfu import ice_sockets, peer  # noqa: F401  (peer installs the patches)


@pytest.fixture
def short_intervals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.05)  # the client checks often
    monkeypatch.setattr(ice_sockets, "CONSENT_TIMEOUT", 0.5)


async def _pair() -> tuple[aioice.ice.Connection, ice_sockets.ServerConnection]:
    client = aioice.ice.Connection(ice_controlling=True, components=1, use_ipv6=False)
    with ice_sockets.server_side():
        server = ice_sockets.ServerConnection(ice_controlling=False, components=1, use_ipv6=False)
    for conn in (client, server):
        await conn.gather_candidates()
    for me, other in ((client, server), (server, client)):
        me.remote_username, me.remote_password = other.local_username, other.local_password
        for candidate in other.local_candidates:
            await me.add_remote_candidate(candidate)
        await me.add_remote_candidate(None)
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
        for conn in (sdk, other):
            await conn.gather_candidates()
        for me, them in ((sdk, other), (other, sdk)):
            me.remote_username, me.remote_password = them.local_username, them.local_password
            for candidate in them.local_candidates:
                await me.add_remote_candidate(candidate)
            await me.add_remote_candidate(None)
        async with asyncio.timeout(10):
            await asyncio.gather(sdk.connect(), other.connect())
        to_other = _count_requests(other)
        await asyncio.sleep(0.5)
        assert len(to_other) >= 3  # its checks, every ~50 ms
    finally:
        for conn in (sdk, other):
            await conn.close()
