"""Dead-connection detection for :class:`~mediaserver.client.sdk.MeetingClient`.

A WebSocket can stay open while nothing answers on it (the node holding it is paused
or cut off, a relay lost the session): an application ``ping`` every ``interval``
seconds that gets no reply (a ``pong``, or any ``error`` with its ref) within
``timeout`` closes the socket, so the client reconnects. (Media that failed is
recovered over the same socket: ``MeetingClient.restart_media``.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["cancel", "keepalive"]


async def keepalive(
    request: Callable[..., Awaitable[dict[str, Any]]],
    drop: Callable[[], Awaitable[None]],
    *,
    interval: float,
    timeout: float,
) -> None:
    """Ping until the socket closes (this task is then cancelled); ``drop`` it when a
    ping stays unanswered."""
    while True:
        await asyncio.sleep(interval)
        try:
            await request({"type": "ping"}, timeout=timeout)
        except TimeoutError:
            await drop()
            return
        except Exception:
            continue


async def cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
