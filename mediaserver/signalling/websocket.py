"""The WebSocket endpoint: the only IO in signalling."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import WSMsgType, web

from ..app_keys import ADDRESSES, CONFIG, LINKS, METRICS, RELAY, ROOM_TOKEN_SECRET, ROOMS, SESSIONS
from ..cluster.cluster import Lease, RoomRevoked, Unavailable
from ..cluster.relay import Relay
from ..config import Config
from ..limits import MessageLimiter
from ..sfu.rooms import RoomManager
from . import messages as m
from .handler import SignallingSession
from .messages import ErrorCode, error

__all__ = ["websocket_handler"]


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG]
    manager = request.app[ROOMS]
    limit = config.signalling.max_message_bytes
    # aiohttp closes the socket on frames over max_msg_size; allow more than our limit
    # so that an oversize message gets a proper error reply instead.
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=max(limit * 16, 1 << 20))
    await ws.prepare(request)
    if not manager.accepting:
        await ws.send_json(error(ErrorCode.SHUTTING_DOWN, "server is shutting down"))
        await ws.close(code=1001, message=b"shutting down")
        return ws
    address = request.remote or ""
    addresses = request.app[ADDRESSES]
    if not addresses.acquire(address):
        manager.metrics.signalling_errors.labels(ErrorCode.TOO_MANY_CONNECTIONS).inc()
        await ws.send_json(
            error(
                ErrorCode.TOO_MANY_CONNECTIONS,
                f"at most {addresses.limit} signalling connections per address",
            )
        )
        await ws.close(code=1008, message=b"too many connections")
        return ws
    try:
        return await _serve(request, ws, config, manager)
    finally:
        addresses.release(address)


async def _serve(
    request: web.Request, ws: web.WebSocketResponse, config: Config, manager: RoomManager
) -> web.WebSocketResponse:
    limit = config.signalling.max_message_bytes
    sig = config.signalling
    limiter = MessageLimiter(
        sig.messages_per_second, sig.message_burst, sig.rate_limited_close_after
    )

    async def send(message: dict[str, Any]) -> None:
        if not ws.closed:
            await ws.send_str(json.dumps(message, separators=(",", ":")))

    links: Any = request.app.get(LINKS)

    async def disconnect() -> None:
        if not ws.closed:
            await ws.close(code=1000, message=b"closed by server")

    session = SignallingSession(
        manager,
        send,
        max_message_bytes=limit,
        links=links,
        disconnect=disconnect,
        peer=request.remote or "",
        room_token_secret=request.app.get(ROOM_TOKEN_SECRET),
    )

    async def send_text(text: str) -> None:
        if not ws.closed:
            await ws.send_str(text)

    relay: Relay | None = request.app.get(RELAY)
    relayed: str | None = None  # connection id while relaying to the room's node
    sessions = request.app[SESSIONS]
    sessions.add(ws)
    metrics = request.app[METRICS]
    metrics.websockets.inc()
    loop = asyncio.get_running_loop()
    join_deadline = loop.time() + config.signalling.join_timeout_seconds
    try:
        while True:
            # A connection must join a room within join_timeout_seconds.
            timeout = None if session.ever_joined else join_deadline - loop.time()
            try:
                # (aiohttp treats a timeout of 0 as no timeout: keep it positive)
                msg = await ws.receive(timeout=None if timeout is None else max(timeout, 0.001))
            except TimeoutError:
                await session.send_error(
                    ErrorCode.JOIN_TIMEOUT,
                    f"no successful join within {config.signalling.join_timeout_seconds}s",
                )
                break
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                verdict = limiter.check(loop.time())  # before any parsing or relaying
                if verdict != "ok":
                    await session.send_error(
                        ErrorCode.RATE_LIMITED,
                        f"more than {sig.messages_per_second:g} messages per second "
                        f"(burst {sig.message_burst}): message dropped",
                    )
                    if verdict == "close":
                        session.log.warning(
                            "signalling connection closed: rate limit",
                            refused=limiter.refused_total,
                        )
                        await ws.close(code=1008, message=b"rate limited")
                        break
                    continue
                if relay is not None:
                    if relayed is not None:  # the room is on another node: pass it on
                        try:
                            await relay.forward(relayed, msg.data)
                        except Unavailable:
                            await session.send_error("unavailable", "temporarily unavailable")
                        continue
                    placed = await _place(relay, session, links, msg.data)
                    if placed == "error":
                        continue
                    if isinstance(placed, Lease):
                        relayed = relay.new_conn_id()
                        session.ever_joined = True
                        await relay.open(
                            relayed,
                            placed,
                            [msg.data],
                            peer=request.remote or "",
                            send=send_text,
                            close=disconnect,
                        )
                        continue
                if not await session.on_frame(msg.data):
                    break
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                break
            elif msg.type == WSMsgType.ERROR:
                break
    finally:
        sessions.discard(ws)
        metrics.websockets.dec()
        if relay is not None and relayed is not None:
            await relay.closed(relayed)
        await session.close("disconnected")
        if not ws.closed:
            await ws.close()
    return ws


async def _place(
    relay: Relay, session: SignallingSession, links: Any, raw: str | bytes
) -> Lease | str | None:
    """On a join: make sure the room has a node. Returns the lease when another node
    holds the room, None to handle the frame here, "error" when already answered."""
    if session.version is None:
        return None
    try:
        obj = m.decode(raw)
        if obj.get("type") != "join":
            return None
        msg = m.parse(obj)
    except m.ProtocolError:
        return None  # the local session answers with the precise error
    assert isinstance(msg, m.Join)
    room = msg.room
    if room is not None:  # an ad-hoc room: no lease for a join without a valid token
        try:
            room = session.room_claims(msg).room_id
        except m.ProtocolError:
            return None  # the local session refuses it the same way, creating nothing
    try:
        if msg.link is not None:
            try:
                link = await links.store.get_link_by_slug(msg.link) if links is not None else None
            except Exception as exc:  # the shared store is Redis: it may be away
                raise Unavailable(str(exc)) from None
            if link is None:
                return None  # link_not_found, answered locally
            room = link.id
        if room is None:
            return None
        lease = await relay.cluster.claim(room)
        if lease.node == relay.node:
            if room in relay.cluster.leases or await relay.cluster.hold(lease):
                return None
            raise Unavailable("lease changed hands")
    except RoomRevoked:
        await session.send_error("link_revoked", "this meeting was cancelled", msg.id)
        return "error"
    except Unavailable:  # the precise reply, and the connection stays usable
        await session.send_error(
            "unavailable", "temporarily unavailable: try again in a moment", msg.id
        )
        return "error"
    return lease
