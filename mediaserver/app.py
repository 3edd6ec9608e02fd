"""Builds the aiohttp application: routes, typed app keys, startup/cleanup pairs."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import __version__
from .app_keys import CONFIG, LINKS, METRICS, RELAY, ROOMS, SESSIONS, STORE
from .config import Config, announced_map
from .sfu.peer import (
    configure_announced_addresses,
    configure_ice_addresses,
    configure_port_range,
    configure_udp_mux,
)
from .sfu.room import Room, RoomManager
from .sfu.udpmux import UdpMux
from .signalling.websocket import websocket_handler
from .state import create_store
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
            **(
                {"cluster": {"node": relay.node, "redis": relay.cluster.healthy}}
                if (relay := request.app.get(RELAY)) is not None
                else {}
            ),
        },
        status=200 if manager.accepting else 503,
    )


WEB_DIR = Path(__file__).parent / "web"
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    # the slug in the URL is a secret: never send it to other sites
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "media-src 'self' blob: mediastream:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "Permissions-Policy": "camera=(self), microphone=(self), display-capture=(self)",
}


async def join_page(request: web.Request) -> web.Response:
    """The browser join page; the slug, token and invite are read by the page itself."""
    return web.Response(
        body=(WEB_DIR / "index.html").read_bytes(),
        content_type="text/html",
        charset="utf-8",
        headers=PAGE_HEADERS,
    )


async def metrics_handler(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    await app[STORE].open()
    yield
    await app[STORE].close()


async def _rooms_ctx(app: web.Application) -> AsyncIterator[None]:
    rtc = app[CONFIG].rtc
    configure_ice_addresses(rtc.ice_addresses)
    configure_port_range(rtc.port_min, rtc.port_max)
    configure_announced_addresses(announced_map(rtc))
    mux = None
    if rtc.udp_port:
        import aioice.ice

        # the configured addresses, or every interface's (as aioice would gather them)
        mux = UdpMux(rtc.udp_port, aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True))
        await mux.start()
        get_logger().info("media port", udp_port=rtc.udp_port, addresses=list(mux.sockets))
    configure_udp_mux(mux)
    app[ROOMS] = RoomManager(app[CONFIG], app[METRICS])
    try:
        yield
        await app[ROOMS].shutdown()
    finally:
        if mux is not None:
            configure_udp_mux(None)
            mux.close()


async def _cluster_ctx(app: web.Application) -> AsyncIterator[None]:
    """state.backend = "redis": register this node, place rooms, relay signalling."""
    import os
    import socket

    from .cluster import Cluster
    from .cluster.relay import Relay
    from .signalling.handler import SignallingSession

    config = app[CONFIG]
    manager = app[ROOMS]
    node_id = config.cluster.node_id or (
        f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"
    )
    cluster = Cluster(
        config.state.redis_url,
        node_id,
        lease_seconds=config.cluster.lease_seconds,
        heartbeat_seconds=config.cluster.heartbeat_seconds,
        load=lambda: sum(len(r.participants) for r in manager.rooms.values()),
    )
    links: Any = app.get(LINKS)

    def make_session(*, send: Any, disconnect: Any, peer: str) -> SignallingSession:
        return SignallingSession(
            manager,
            send,
            max_message_bytes=config.signalling.max_message_bytes,
            links=links,
            disconnect=disconnect,
            peer=peer,
        )

    async def room_closed(room: Room) -> None:
        lease = cluster.leases.get(room.id)
        if lease is not None:
            await cluster.release(lease)

    async def lease_lost(room_id: str) -> None:
        room = manager.rooms.get(room_id)
        if room is not None:
            await manager.close_room(room, "moved")

    manager.on_room_closed = room_closed
    cluster.on_lease_lost = lease_lost
    cluster.has_room = lambda room_id: room_id in manager.rooms
    await cluster.start()
    relay = Relay(cluster, manager, make_session)
    app[RELAY] = relay
    get_logger().info("cluster node started", node=node_id)
    yield
    cluster.draining = True
    await manager.shutdown()
    await relay.close()
    await cluster.stop()


async def _linkapi_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start the link service and webhook dispatcher; connect them to the rooms."""
    from linkapi.service import LinkService
    from linkapi.webhooks import WebhookDispatcher

    service = app[LINKS]
    assert isinstance(service, LinkService)
    cfg = app[CONFIG].linkapi
    await service.start()
    dispatcher = WebhookDispatcher(
        app[STORE],
        timeout=cfg.webhook_timeout_seconds,
        retry_base=cfg.webhook_retry_base_seconds,
        retry_max=cfg.webhook_retry_max_seconds,
    )
    service.wake_dispatcher = dispatcher.wake
    relay = app.get(RELAY)
    if relay is not None:  # one dispatcher for the whole cluster: no double deliveries
        cluster = relay.cluster

        async def should_run() -> bool:
            return bool(await cluster.singleton("webhook-dispatcher"))

        dispatcher.should_run = should_run
    await dispatcher.start()
    manager = app[ROOMS]
    # Room events go through one queue and one writer so the outbox keeps their order.
    queue: asyncio.Queue[tuple[str, str, str, dict[str, Any]]] = asyncio.Queue()
    log = get_logger(component="linkapi")

    async def writer() -> None:
        while True:
            tenant_id, etype, link_id, data = await queue.get()
            report = data.get("report") if etype == "room.finished" else None
            if report is not None:
                try:
                    await app[STORE].add_meeting_report(
                        f"mr_{secrets.token_urlsafe(12)}",
                        link_id,
                        tenant_id,
                        float(report["finished_at"]),
                        report,
                    )
                except Exception:
                    log.exception("could not store a meeting report", link=link_id)
            try:
                await service.emit(tenant_id, etype, link_id, data)
            except Exception:
                log.exception("could not store a room event", event_type=etype, link=link_id)
            finally:
                queue.task_done()

    writer_task = asyncio.ensure_future(writer())

    def on_room_event(room: Room, etype: str, data: dict[str, Any]) -> None:
        if room.tenant_id is None or room.link_id is None:
            return
        data = {"link_id": room.link_id, "room_id": room.id, **data}
        queue.put_nowait((room.tenant_id, etype, room.link_id, data))

    async def on_revoked(link: Any) -> None:
        room = manager.rooms.get(link.id)
        if room is not None:
            await manager.close_room(room, "link_revoked")
            return
        relay = app.get(RELAY)
        if relay is not None:  # the meeting may run on another node
            owner = await relay.cluster.owner_of(link.id)
            if owner and owner != relay.node:
                with contextlib.suppress(Exception):
                    await relay.cluster.send(
                        owner, {"t": "close_room", "room": link.id, "reason": "link_revoked"}
                    )

    manager.on_event = on_room_event
    service.on_revoked = on_revoked
    yield
    await manager.shutdown()  # rooms still open now still report (room.finished, ...)
    manager.on_event = None
    try:
        await asyncio.wait_for(queue.join(), 5.0)
    except TimeoutError:
        log.warning("room events not stored before shutdown", pending=queue.qsize())
    writer_task.cancel()
    await dispatcher.stop()


async def _on_shutdown(app: web.Application) -> None:
    """SIGTERM / shutdown: refuse new joins, tell everyone, close rooms and sockets."""
    log = get_logger()
    manager = app[ROOMS]
    manager.accepting = False
    relay = app.get(RELAY)
    if relay is not None:  # draining: no new rooms are placed here, starting now
        relay.cluster.draining = True
        with contextlib.suppress(Exception):
            await relay.cluster.beat()
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
    app[STORE] = create_store(
        config.state.backend,
        sqlite_path=config.state.effective_sqlite_path,
        redis_url=config.state.redis_url,
    )
    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(_rooms_ctx)
    if config.state.backend == "redis":
        app.cleanup_ctx.append(_cluster_ctx)
    if config.linkapi.enabled:
        from linkapi import setup_linkapi
        from linkapi.problems import problem_middleware
        from linkapi.service import LinkService

        service = LinkService(app[STORE], config)
        app[LINKS] = service
        app.middlewares.append(problem_middleware)
        setup_linkapi(app, service)
        app.cleanup_ctx.append(_linkapi_ctx)
    app.on_shutdown.append(_on_shutdown)
    app.router.add_get("/healthz", healthz)
    if config.metrics.enabled:
        app.router.add_get(config.metrics.path, metrics_handler)
    app.router.add_get("/ws", websocket_handler)
    app.router.add_get("/j/{slug}", join_page)
    app.router.add_static("/static/", WEB_DIR, append_version=False)
    return app
