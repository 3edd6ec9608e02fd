from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from mediaserver.app import create_app
from mediaserver.app_keys import METRICS, ROOMS
from mediaserver.client.sdk import MeetingClient
from mediaserver.config import Config, load_config


def make_config(**rooms: Any) -> Config:
    config = load_config(None, env={})
    return dataclasses.replace(
        config,
        rtc=dataclasses.replace(config.rtc, ice_addresses=("127.0.0.1",)),
        rooms=dataclasses.replace(config.rooms, **rooms) if rooms else config.rooms,
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
    return Server(app, runner, port)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = await start_server(make_config(empty_timeout_seconds=1.0))
    try:
        yield srv
    finally:
        await srv.runner.cleanup()


@pytest.fixture
async def clients() -> AsyncIterator[list[MeetingClient]]:
    made: list[MeetingClient] = []
    yield made
    for c in made:
        await c.close()
