"""Ordered, retried delivery of relay messages to one node each.

Redis pub/sub keeps nothing: a message published while the other node resubscribes
(PUBLISH answers 0) or while Redis is away is lost. Every relay message therefore goes
through the outbox of its destination node, which sends them one by one, in order, and
repeats a message until a subscriber received it:

- while Redis is unreachable, for as long as it takes (up to ``max_queued`` messages:
  a meeting keeps its signalling across a Redis restart, delivered late but in order);
- while Redis answers but nobody listens on the node's channel, for ``give_up``
  seconds; then the node is gone: ``on_gone(node)`` (the relay closes what it relayed
  to or from that node, with a message to each client) and the queue is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from .cluster import Unavailable

__all__ = ["Outbox"]


class Outbox:
    def __init__(
        self,
        publish: Callable[[str, dict[str, Any]], Awaitable[int]],
        on_gone: Callable[[str], Awaitable[None]],
        *,
        give_up: float,
        max_queued: int = 5000,
    ) -> None:
        self.publish = publish
        self.on_gone = on_gone
        self.give_up = give_up
        self.max_queued = max_queued
        self.queues: dict[str, deque[dict[str, Any]]] = {}
        self.wakeups: dict[str, asyncio.Event] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def put(self, node: str, message: dict[str, Any]) -> None:
        queue = self.queues.setdefault(node, deque())
        queue.append(message)
        wake = self.wakeups.setdefault(node, asyncio.Event())
        wake.set()
        if node not in self.tasks or self.tasks[node].done():
            self.tasks[node] = asyncio.ensure_future(self._run(node, queue, wake))

    async def close(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        for task in self.tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self, node: str, queue: deque[dict[str, Any]], wake: asyncio.Event) -> None:
        unheard_since: float | None = None  # first PUBLISH = 0 of the current message
        delay = 0.05
        while True:
            if not queue:
                wake.clear()
                await wake.wait()
                continue
            try:
                received = await self.publish(node, queue[0])
            except Unavailable:
                received = -1  # Redis away: keep the queue and try again
            if received > 0:
                queue.popleft()
                unheard_since, delay = None, 0.05
                continue
            now = time.monotonic()
            if received == 0:
                unheard_since = unheard_since or now
            if len(queue) > self.max_queued or (
                unheard_since is not None and now - unheard_since > self.give_up
            ):
                self.queues.pop(node, None)
                self.wakeups.pop(node, None)
                self.tasks.pop(node, None)
                await self.on_gone(node)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
