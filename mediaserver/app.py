"""Builds the aiohttp application: routes, typed app keys, startup/cleanup pairs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import __version__
from .app_keys import CONFIG, METRICS, ROOMS, SESSIONS
from .config import Config
from .sfu.peer import configure_ice_addresses, configure_port_range
from .sfu.room import RoomManager
from .signalling.websocket import websocket_handler
from .telemetry import Metrics, get_logger

__all__ = ["create_app"]

STARTED = web.AppKey("started", float)


async def healthz(request: web.Request) -> web.Response:
    manager = request.app[ROOMS]
    return web.json_response(
        {
            "status": "ok" if manager.accepting else "draining",
            "version": __version__,
            "uptime_seconds": round(time.time() - request.app[STARTED], 3),
            "rooms": len(manager.rooms),
            "participants": sum(len(r.participants) for r in manager.rooms.values()),
            "state_backend": request.app[CONFIG].state.backend,
        },
        status=200 if manager.accepting else 503,
    )


async def metrics_handler(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _rooms_ctx(app: web.Application) -> AsyncIterator[None]:
    rtc = app[CONFIG].rtc
    configure_ice_addresses(rtc.ice_addresses)
    configure_port_range(rtc.port_min, rtc.port_max)
    app[ROOMS] = RoomManager(app[CONFIG], app[METRICS])
    yield
    await app[ROOMS].shutdown()


async def _on_shutdown(app: web.Application) -> None:
    """SIGTERM / shutdown: refuse new joins, tell everyone, close rooms and sockets."""
    log = get_logger()
    manager = app[ROOMS]
    manager.accepting = False
    log.info("shutting down", rooms=len(manager.rooms))
    grace = app[CONFIG].server.shutdown_grace_seconds
    try:
        await asyncio.wait_for(manager.shutdown("server_shutdown"), timeout=grace)
    except TimeoutError:
        log.warning("rooms did not close within the grace period")
    sessions: set[web.WebSocketResponse] = app[SESSIONS]
    for ws in list(sessions):
        await ws.close(code=1001, message=b"server shutdown")


def create_app(config: Config, metrics: Metrics | None = None) -> web.Application:
    app = web.Application(client_max_size=1 << 20)
    app[CONFIG] = config
    app[METRICS] = metrics or Metrics()
    app[SESSIONS] = set()
    app[STARTED] = time.time()
    app.cleanup_ctx.append(_rooms_ctx)
    app.on_shutdown.append(_on_shutdown)
    app.router.add_get("/healthz", healthz)
    if config.metrics.enabled:
        app.router.add_get(config.metrics.path, metrics_handler)
    app.router.add_get("/ws", websocket_handler)
    return app
