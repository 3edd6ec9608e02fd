"""Builds the aiohttp application: routes, typed app keys, startup/cleanup pairs."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import math
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import __version__, client_address
from .app_keys import (
    ADDRESSES,
    CONFIG,
    LINKS,
    METRICS,
    RELAY,
    ROOM_TOKEN_SECRET,
    ROOMS,
    SESSIONS,
    STORE,
)
from .client_address import TrustedProxies
from .config import Config, announced_map
from .limits import AddressLimit
from .sfu import fastpath, rxpath
from .sfu.peer import (
    configure_announced_addresses,
    configure_ice_addresses,
    configure_port_range,
    configure_udp_mux,
)
from .sfu.room import Room
from .sfu.rooms import RoomManager
from .sfu.udpmux import UdpMux
from .signalling.websocket import websocket_handler
from .state import Store, create_store
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
            "forwarding": {**fastpath.status(), **rxpath.status()},
            "gc_frozen_objects": gc.get_freeze_count(),
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


async def _static_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``/static/``: revalidated on every load (ETag / Last-Modified make it cheap), so
    that after an upgrade a browser never mixes a new ``app.js`` with an old module."""
    if request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"


async def join_page(request: web.Request) -> web.Response:
    """The browser join page; the slug, token and invite are read by the page itself."""
    return web.Response(
        body=(WEB_DIR / "index.html").read_bytes(),
        content_type="text/html",
        charset="utf-8",
        headers=PAGE_HEADERS,
    )


async def metrics_handler(request: web.Request) -> web.Response:
    token = request.app[CONFIG].metrics.bearer_token
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return web.Response(
                status=401,
                text="metrics: bearer token required\n",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _metrics_listener_ctx(reuse_port: bool) -> Any:
    """metrics.listen: serve the metrics on their own address (e.g. 127.0.0.1:9090)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        cfg = app[CONFIG].metrics
        address = cfg.listen_address
        assert address is not None
        metrics_app = web.Application()
        metrics_app[CONFIG] = app[CONFIG]
        metrics_app[METRICS] = app[METRICS]
        metrics_app.router.add_get(cfg.path, metrics_handler)
        runner = web.AppRunner(metrics_app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, address[0], address[1], reuse_port=reuse_port or None)
        await site.start()
        get_logger().info("metrics listening", address=cfg.listen, path=cfg.path)
        yield
        await runner.cleanup()

    return ctx


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    await app[STORE].open()
    yield
    await app[STORE].close()


async def _room_tokens_ctx(app: web.Application) -> AsyncIterator[None]:
    """rooms.adhoc: the key that signs room tokens, the same one as join tokens."""
    from linkapi.secrets_ import load_token_secret

    app[ROOM_TOKEN_SECRET] = await load_token_secret(app[CONFIG].linkapi.token_secret, app[STORE])
    yield


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


async def _recordings_ctx(app: web.Application) -> AsyncIterator[None]:
    """Recordings: those a crash cut are marked at start-up; retention sweeps."""
    from .recording.retention import retention_task

    config, store = app[CONFIG], app[STORE]
    await recordings_at_startup(config, store)
    directory = Path(config.recording_directory)
    async with retention_task(directory, config.recording.retention_days, store.delete_recording):
        yield


async def recordings_at_startup(config: Config, store: Store) -> None:
    """Recordings this node was writing when it died are marked "interrupted"."""
    from .recording.control import mark_interrupted_at_startup

    found = await asyncio.to_thread(mark_interrupted_at_startup, config.recording_directory)
    for manifest in found:
        if manifest.get("link_id"):
            await store.put_recording(manifest)
    if found:
        get_logger().warning("recordings interrupted", recordings=[m["id"] for m in found])


async def _cluster_ctx(app: web.Application) -> AsyncIterator[None]:
    """state.backend = "redis": register this node, place rooms, relay signalling."""
    import os
    import socket

    from .cluster import Cluster, roomstate
    from .cluster.relay import Relay
    from .signalling.handler import SignallingSession

    config = app[CONFIG]
    manager = app[ROOMS]
    node_id = config.cluster.node_id or (
        f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"
    )
    cluster = Cluster(
        config.state.redis_target,
        node_id,
        lease_seconds=config.cluster.lease_seconds,
        heartbeat_seconds=config.cluster.heartbeat_seconds,
        # participants, every room counting at least one (also a room whose first join
        # is still under way): placement counts a placed room once, here or in Redis
        load=lambda: (
            sum(max(1, len(r.participants)) for r in manager.rooms.values())
            + sum(1 for room_id in cluster.leases if room_id not in manager.rooms)
        ),
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
            room_token_secret=app.get(ROOM_TOKEN_SECRET),
        )

    async def room_closed(room: Room) -> None:
        lease = cluster.leases.get(room.id)
        if lease is not None:
            if room.close_reason not in roomstate.KEEP_STATE_REASONS:  # the meeting is over
                with contextlib.suppress(Exception):
                    await cluster.save_state(lease, delete=True)
            await cluster.release(lease)

    async def lease_lost(room_id: str) -> None:
        room = manager.rooms.get(room_id)
        if room is not None:
            await manager.close_room(room, "moved")

    def valid_until(room_id: str, until: float) -> None:
        room = manager.rooms.get(room_id)
        if room is not None:  # (monotonic and loop time are the same clock)
            room.media_until = until

    def room_opened(room: Room) -> None:
        room.media_until = cluster.valid_until.get(room.id, math.inf) - cluster.fence_margin
        state = cluster.restored.pop(room.id, None)
        if state is not None:  # the meeting moved here: its settings, lock, bars, ...
            roomstate.apply(room, state)

    def room_state(room_id: str) -> str | None:
        room = manager.rooms.get(room_id)
        return None if room is None or room.closed else roomstate.snapshot(room)

    manager.on_room_closed = room_closed
    manager.on_room_opened = room_opened
    cluster.room_state = room_state
    cluster.on_valid_until = valid_until
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
        allow_private=cfg.allow_private_webhook_urls,
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
            recording = data.get("recording") if etype.startswith("recording.") else None
            if recording is not None:  # its manifest, kept in the store (linkapi §18)
                try:
                    await app[STORE].put_recording(recording)
                except Exception:
                    log.exception("could not store a recording", link=link_id)
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
        """Called after the revocation is stored. Every mark is set before any lookup,
        so a join in flight either sees a mark or opened a room that is then closed."""
        relay = app.get(RELAY)
        if relay is not None:  # no node claims the room from now on
            with contextlib.suppress(Exception):
                await relay.cluster.mark_revoked(link.id)
        await manager.revoke_link(link.id)  # marks it here, closes the room if it is here
        if relay is not None:  # the meeting may run (or be opening) on another node
            owner = await relay.cluster.owner_of(link.id)
            if owner and owner != relay.node:
                with contextlib.suppress(Exception):
                    await relay.cluster.send(
                        owner, {"t": "close_room", "room": link.id, "reason": "link_revoked"}
                    )

    async def on_invite_revoked(link: Any, invite_id: str) -> None:
        """Guests waiting through a revoked invite are sent away, on whichever node
        runs the meeting (people it already admitted stay)."""
        await manager.revoke_invite(link.id, invite_id)
        relay = app.get(RELAY)
        if relay is not None:
            owner = await relay.cluster.owner_of(link.id)
            if owner and owner != relay.node:
                with contextlib.suppress(Exception):
                    await relay.cluster.send(
                        owner, {"t": "revoke_invite", "room": link.id, "invite": invite_id}
                    )

    manager.on_event = on_room_event
    manager.key_secret = service.token_secret  # participant keys valid on every node
    service.on_revoked = on_revoked
    service.on_invite_revoked = on_invite_revoked
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


def create_app(
    config: Config, metrics: Metrics | None = None, *, reuse_port: bool = False
) -> web.Application:
    """``reuse_port``: the metrics listener is shared by ``serve --workers`` processes."""
    app = web.Application(client_max_size=1 << 20)
    if config.server.trusted_proxies:  # request.remote is the client behind them
        app.middlewares.append(
            client_address.middleware(TrustedProxies(config.server.trusted_proxies))
        )
    app[CONFIG] = config
    app[METRICS] = metrics or Metrics()
    app[SESSIONS] = set()
    app[ADDRESSES] = AddressLimit(config.signalling.max_connections_per_address)
    app[STARTED] = time.time()
    app[STORE] = create_store(
        config.state.backend,
        sqlite_path=config.state.effective_sqlite_path,
        redis_url=config.state.redis_target,
    )
    app.cleanup_ctx.append(_store_ctx)
    if config.rooms.adhoc:
        app.cleanup_ctx.append(_room_tokens_ctx)
    app.cleanup_ctx.append(_rooms_ctx)
    app.cleanup_ctx.append(_recordings_ctx)
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
    if config.metrics.enabled and config.metrics.listen_address is not None:
        app.cleanup_ctx.append(_metrics_listener_ctx(reuse_port))
    elif config.metrics.enabled:
        app.router.add_get(config.metrics.path, metrics_handler)
        if not config.metrics.bearer_token:
            get_logger().warning(
                "metrics served on the public listener without a bearer token",
                hint="set metrics.listen or metrics.bearer_token",
            )
    app.router.add_get("/ws", websocket_handler)
    app.router.add_get("/j/{slug}", join_page)
    app.router.add_static("/static/", WEB_DIR, append_version=False)
    app.on_response_prepare.append(_static_headers)
    return app
