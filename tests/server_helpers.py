"""In-process test servers (real aiohttp app on a loopback port)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from linkapi.secrets_ import mint_room_token
from mediaserver.app import create_app
from mediaserver.app_keys import LINKS, METRICS, ROOMS
from mediaserver.client.sdk import MeetingClient
from mediaserver.config import Config, load_config

#: The token key of every test server, so that tests can mint room tokens themselves.
TOKEN_SECRET = "test-token-secret-0123456789abcdefghij"
#: For servers started as processes: ad-hoc rooms on, signed with TOKEN_SECRET.
ADHOC_ENV = {"MEDIASERVER_ROOMS_ADHOC": "true", "MEDIASERVER_LINKAPI_TOKEN_SECRET": TOKEN_SECRET}
#: For server processes whose tests join many clients from 127.0.0.1 at once (the join
#: rate per address is tested with its own config in tests/attacks).
MANY_CLIENTS_ENV = {"MEDIASERVER_SIGNALLING_JOIN_BURST_PER_ADDRESS": "0"}


def room_token(room: str, name: str, *, role: str = "member", ttl: float = 600.0) -> str:
    """A room token for a test server (the one way tests mint them)."""
    return mint_room_token(TOKEN_SECRET.encode(), room, name, role=role, ttl_seconds=ttl)[0]


async def join_room(client: MeetingClient, room: str, *, role: str = "member") -> dict[str, Any]:
    """``client`` joins the ad-hoc ``room`` with a token in its own name."""
    return await client.join(room, room_token(room, client.name, role=role))


ROOT = Path(__file__).resolve().parents[1]


def clean_env(*extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without MEDIASERVER_* variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIASERVER_")}
    for e in extra:
        env |= e
    return env


def spawn_server(
    config: Path, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`mediaserver serve --config CONFIG` as a process, its stderr appended to ``log``,
    in ``env`` (default: :func:`clean_env`)."""
    with log.open("ab") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "mediaserver", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=clean_env() if env is None else env,
            cwd=ROOT,
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> dict:
    """Poll a server process's /healthz until it answers 200; returns the answer."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            assert proc.poll() is None, "server exited during start-up"
            try:
                async with s.get(url + "/healthz") as r:
                    if r.status == 200:
                        return dict(await r.json())
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("server did not answer /healthz")


def wait_healthy_sync(
    url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0
) -> None:
    """:func:`wait_healthy` for synchronous fixtures; a server that exits shows its log."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, "server did not answer /healthz"
        time.sleep(0.1)


def stop_process(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM a server process; SIGKILL it if it has not exited within 10 s."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def make_config(**rooms: Any) -> Config:
    config = load_config(None, env={})
    return dataclasses.replace(
        config,
        rtc=dataclasses.replace(config.rtc, ice_addresses=("127.0.0.1",)),
        rooms=dataclasses.replace(config.rooms, **{"adhoc": True, **rooms}),
        state=dataclasses.replace(config.state, backend="memory"),
        # every test client has the address 127.0.0.1: the join rate per address is
        # tested with its own config (tests/attacks/test_signalling_attacks.py)
        signalling=dataclasses.replace(config.signalling, join_burst_per_address=0),
        linkapi=dataclasses.replace(
            config.linkapi,
            token_secret=TOKEN_SECRET,
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
async def webhook_sink(received: list[Any] | None = None) -> AsyncIterator[str]:
    """The URL of a loopback webhook receiver that answers 204 to everything (and appends
    each JSON body to ``received`` when given)."""

    async def ok(request: web.Request) -> web.Response:
        if received is not None:
            received.append(await request.json())
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


def cli_tenant_key(config: Path, env: dict[str, str] | None = None) -> str:
    """A new tenant "Acme" through `mediaserver tenant create`, on the config's store;
    its API key."""
    out = subprocess.run(
        [sys.executable, "-m", "mediaserver", "tenant", "create", "Acme", "--config", str(config)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        timeout=60,
    )
    return out.stdout.strip().splitlines()[-1]
