"""Webhooks: signed, durable, retried with backoff, per-room order kept."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from aiohttp import web
from api_client import ApiClient
from server_helpers import event, make_config, slug_of, start_server

from linkapi.webhooks import verify_signature
from mediaserver.app_keys import LINKS

pytestmark = pytest.mark.integration


class Receiver:
    """A webhook receiver on loopback that can be 'down' (503 or not listening)."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.bad_signatures = 0
        self.refused = 0
        self.up = True
        self.secret = ""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not self.up:
            self.refused += 1
            return web.Response(status=503)
        if not verify_signature(self.secret, request.headers["Mediaserver-Signature"], body):
            self.bad_signatures += 1
            return web.Response(status=400)
        payload = json.loads(body)
        assert payload["id"] == request.headers["Mediaserver-Event-Id"]
        self.events.append(payload)
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def wait_for(self, n: int, timeout: float = 15.0) -> None:
        for _ in range(int(timeout / 0.05)):
            if len(self.events) >= n:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{len(self.events)} of {n} events arrived")


async def test_webhooks_survive_a_down_receiver_in_order(clients):
    srv = await start_server(make_config())
    _, key = await srv.app[LINKS].create_tenant("T")
    api = ApiClient(srv.http_url, key)
    receiver = Receiver()
    try:
        code, hook, _ = await api.post("/v1/webhooks", {"url": receiver.url})
        assert code == 201 and hook["secret"].startswith("whsec_")
        receiver.secret = hook["secret"]
        # the receiver is not even listening yet: connection refused, then 503s
        _, link, _ = await api.post("/v1/links", {"event": event("w1")})
        await api.patch(f"/v1/links/{link['id']}", {"event": {"summary": "Renamed"}})
        c = srv.client("x")
        clients.append(c)
        await c.connect()
        await c.request({"type": "join", "link": slug_of(link["host_url"]), "name": "Hana"})
        await c.leave()
        await api.delete(f"/v1/links/{link['id']}")
        await asyncio.sleep(0.5)
        receiver.up = False
        await receiver.start()
        await asyncio.sleep(1.0)
        assert receiver.events == [] and receiver.refused >= 1
        code, deliveries, _ = await api.get("/v1/webhooks/deliveries?undelivered=true")
        assert code == 200 and deliveries["deliveries"]
        assert any(len(d["attempts"]) >= 2 for d in deliveries["deliveries"])
        assert all(d["delivered_at"] is None for d in deliveries["deliveries"])
        # back up: everything arrives, in order, signatures valid
        receiver.up = True
        expected = [
            "link.created",
            "link.updated",
            "room.started",
            "participant.joined",
            "participant.left",
            "link.revoked",
            "room.finished",
        ]
        await receiver.wait_for(len(expected))
        await asyncio.sleep(0.3)
        types = [e["type"] for e in receiver.events]
        assert types[:2] == ["link.created", "link.updated"]
        assert sorted(types) == sorted(expected), types
        assert types.index("participant.joined") < types.index("participant.left")
        assert types.index("room.started") < types.index("participant.joined")
        assert receiver.bad_signatures == 0
        assert len({e["id"] for e in receiver.events}) == len(receiver.events)
        assert all(e["tenant_id"] for e in receiver.events)
        code, deliveries, _ = await api.get("/v1/webhooks/deliveries")
        assert all(d["delivered_at"] for d in deliveries["deliveries"])
        code, body, _ = await api.get("/v1/webhooks")
        assert code == 200 and "secret" not in body["webhooks"][0]
    finally:
        await receiver.stop()
        await api.close()
        await srv.runner.cleanup()


async def test_webhook_url_checks():
    config = make_config()
    import dataclasses

    config = dataclasses.replace(
        config, linkapi=dataclasses.replace(config.linkapi, allow_private_webhook_urls=False)
    )
    srv = await start_server(config)
    _, key = await srv.app[LINKS].create_tenant("T")
    api = ApiClient(srv.http_url, key)
    try:
        for url in (
            "http://127.0.0.1:9/x",
            "http://10.1.2.3/x",
            "http://localhost/x",
            "http://user:pw@example.com/x",
        ):
            code, body, _ = await api.post("/v1/webhooks", {"url": url})
            assert code == 422 and body["errors"][0]["field"] == "url", url
        code, body, _ = await api.post("/v1/webhooks", {"url": "ftp://example.com"})
        assert code == 422
        code, body, _ = await api.post(
            "/v1/webhooks", {"url": "https://hooks.example.com/x", "events": ["link.nope"]}
        )
        assert code == 422
    finally:
        await api.close()
        await srv.runner.cleanup()
