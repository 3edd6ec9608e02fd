"""Per-address limits behind a reverse proxy (``server.trusted_proxies``): with the
proxy trusted, clients are told apart by X-Forwarded-For; without it, the header is
ignored, so a client cannot pick its own address."""

from __future__ import annotations

import dataclasses

import aiohttp
import pytest
from server_helpers import make_config, serving

pytestmark = pytest.mark.integration


def _config(trusted: tuple[str, ...]):
    config = make_config()
    return dataclasses.replace(
        config,
        server=dataclasses.replace(config.server, trusted_proxies=trusted),
        signalling=dataclasses.replace(config.signalling, max_connections_per_address=1),
    )


async def _first_message(session: aiohttp.ClientSession, url: str, client: str):
    ws = await session.ws_connect(url, headers={"X-Forwarded-For": client})
    await ws.send_json({"type": "hello", "version": 1, "id": 1})
    return ws, await ws.receive_json(timeout=10)


async def test_clients_behind_a_trusted_proxy_are_counted_apart():
    async with serving(_config(("127.0.0.0/8",))) as srv, aiohttp.ClientSession() as s:
        ann, first = await _first_message(s, srv.ws_url, "203.0.113.5")
        assert first["type"] == "welcome"
        # a second socket of the same client is over its limit of one ...
        again, refused = await _first_message(s, srv.ws_url, "198.51.100.1, 203.0.113.5")
        assert refused["code"] == "too_many_connections"
        # ... another client behind the same proxy is not
        bob, other = await _first_message(s, srv.ws_url, "203.0.113.6")
        assert other["type"] == "welcome"
        for ws in (ann, again, bob):
            await ws.close()


async def test_forwarded_for_is_ignored_from_untrusted_peers():
    async with serving(_config(())) as srv, aiohttp.ClientSession() as s:
        ann, first = await _first_message(s, srv.ws_url, "203.0.113.5")
        assert first["type"] == "welcome"
        spoof, refused = await _first_message(s, srv.ws_url, "203.0.113.6")
        assert refused["code"] == "too_many_connections"
        for ws in (ann, spoof):
            await ws.close()
