"""In-process test servers (real aiohttp app on a loopback port)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from mediaserver.app import create_app
from mediaserver.app_keys import LINKS, METRICS, ROOMS
from mediaserver.client.sdk import MeetingClient
from mediaserver.config import Config, load_config


def make_config(**rooms: Any) -> Config:
    config = load_config(None, env={})
    return dataclasses.replace(
        config,
        rtc=dataclasses.replace(config.rtc, ice_addresses=("127.0.0.1",)),
        rooms=dataclasses.replace(config.rooms, **rooms) if rooms else config.rooms,
        state=dataclasses.replace(config.state, backend="memory"),
        linkapi=dataclasses.replace(
            config.linkapi,
            allow_private_webhook_urls=True,
            webhook_retry_base_seconds=0.05,
            webhook_retry_max_seconds=0.5,
        ),
    )


class Server:
    def __init__(self, app: web.Application, runner: web.AppRunner, port: int) -> None:
        self.app = app
        self.runner = runner
        self.port = port
        self.ws_url = f"ws://127.0.0.1:{port}/ws"
        self.http_url = f"http://127.0.0.1:{port}"

    @property
    def rooms(self):
        return self.app[ROOMS]

    @property
    def metrics(self):
        return self.app[METRICS]

    def client(self, name: str) -> MeetingClient:
        return MeetingClient(self.ws_url, name=name, ice_addresses=["127.0.0.1"])


async def start_server(config: Config) -> Server:
    app = create_app(config)
    runner = web.AppRunner(app, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server = Server(app, runner, port)
    if LINKS in app:  # links point at wherever this test server listens
        app[LINKS].public_url = server.http_url
    return server


@contextlib.asynccontextmanager
async def serving(config: Config, backend: str = "memory") -> AsyncIterator[Server]:
    """A test server on ``backend`` (``memory``, or ``redis``: a private redis-server)."""
    redis = None
    if backend == "redis":
        from redis_server import RedisServer

        redis = RedisServer()
        redis.start()
        config = dataclasses.replace(
            config, state=dataclasses.replace(config.state, backend="redis", redis_url=redis.url)
        )
    try:
        srv = await start_server(config)
        try:
            yield srv
        finally:
            await srv.runner.cleanup()
    finally:
        if redis is not None:
            redis.kill()
            redis.close()


@contextlib.asynccontextmanager
async def webhook_sink() -> AsyncIterator[str]:
    """The URL of a loopback webhook receiver that answers 204 to everything."""

    async def ok(request: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()


def at(minutes: float) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def event(eid: str = "evt-1", start: float = -5, end: float = 55, **extra):
    return {"id": eid, "summary": "Weekly sync", "start": at(start), "end": at(end), **extra}


def slug_of(url: str) -> str:
    return url.split("/j/", 1)[1].split("?", 1)[0]
