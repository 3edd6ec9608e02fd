"""The WebSocket endpoint: the only IO in signalling."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import WSMsgType, web

from ..app_keys import CONFIG, LINKS, METRICS, ROOMS, SESSIONS
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
    )
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
                if not await session.on_frame(msg.data):
                    break
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                break
            elif msg.type == WSMsgType.ERROR:
                break
    finally:
        sessions.discard(ws)
        metrics.websockets.dec()
        await session.close("disconnected")
        if not ws.closed:
            await ws.close()
    return ws
