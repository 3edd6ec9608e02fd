"""Abuse limits: token buckets, a bounded work gate and per-address connection counts.

Pure logic (no IO, no sockets, the clock is passed in) so the unit tests are instant;
``WorkGate`` only needs a running event loop to make waiters wait.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

__all__ = ["AddressLimit", "AddressRate", "Busy", "MessageLimiter", "TokenBucket", "WorkGate"]


@dataclass
class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` per second; one token per event."""

    rate: float
    burst: int
    tokens: float = field(default=-1.0)
    stamp: float | None = None

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = float(self.burst)

    def take(self, now: float, cost: float = 1.0) -> bool:
        if self.stamp is not None and now > self.stamp:
            self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now if self.stamp is None else max(self.stamp, now)
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False

    def retry_after(self, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens are available again."""
        return max(0.0, (cost - self.tokens) / self.rate)


class MessageLimiter:
    """Per-connection message rate: ``ok``, ``limited`` (answer ``rate_limited``), or
    ``close`` once ``close_after`` messages in a row were refused (persistent abuse)."""

    def __init__(self, rate: float, burst: int, close_after: int) -> None:
        self.bucket = TokenBucket(rate, burst)
        self.close_after = close_after
        self.refused_in_a_row = 0
        self.refused_total = 0

    def check(self, now: float) -> str:
        if self.bucket.take(now):
            self.refused_in_a_row = 0
            return "ok"
        self.refused_in_a_row += 1
        self.refused_total += 1
        return "close" if self.refused_in_a_row >= self.close_after else "limited"


class AddressLimit:
    """Open connections per client address; ``limit`` 0 means no limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: dict[str, int] = {}

    def acquire(self, address: str) -> bool:
        count = self.open.get(address, 0)
        if self.limit and count >= self.limit:
            return False
        self.open[address] = count + 1
        return True

    def release(self, address: str) -> None:
        count = self.open.get(address, 0) - 1
        if count > 0:
            self.open[address] = count
        else:
            self.open.pop(address, None)


class AddressRate:
    """A token bucket per client address (e.g. joins per address); ``burst`` 0: off.
    Buckets that have refilled are forgotten, so the table stays small."""

    def __init__(self, rate: float, burst: int, max_addresses: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_addresses = max_addresses
        self.buckets: dict[str, TokenBucket] = {}

    def take(self, address: str, now: float) -> float:
        """0.0 when allowed, else the seconds until the next event would be."""
        if not self.burst:
            return 0.0
        bucket = self.buckets.get(address)
        if bucket is None:
            if len(self.buckets) >= self.max_addresses:
                self._forget_full(now)
            bucket = self.buckets[address] = TokenBucket(self.rate, self.burst)
        if bucket.take(now):
            return 0.0
        return max(bucket.retry_after(), 0.001)

    def _forget_full(self, now: float) -> None:
        for address, bucket in list(self.buckets.items()):
            stamp = bucket.stamp if bucket.stamp is not None else now
            if bucket.tokens + (now - stamp) * self.rate >= bucket.burst:
                del self.buckets[address]
        while len(self.buckets) >= self.max_addresses:  # all busy: drop the oldest
            self.buckets.pop(next(iter(self.buckets)))


class Busy(Exception):
    """The node is doing as much of this work as it allows; try again shortly."""


class WorkGate:
    """At most ``concurrent`` holders at once and at most ``queued`` waiting; beyond
    that :meth:`slot` raises :class:`Busy` at once instead of queueing without bound."""

    def __init__(self, concurrent: int, queued: int) -> None:
        self.concurrent = concurrent
        self.queued = queued
        self.active = 0
        self.waiting = 0
        self._semaphore: asyncio.Semaphore | None = None

    @contextlib.asynccontextmanager
    async def slot(self, *, wait: bool = False) -> AsyncIterator[None]:
        """Hold one slot. ``wait=True``: wait even when the queue is full (for work
        that must not be refused, e.g. answers to the server's own offers)."""
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.concurrent)
        if self.active >= self.concurrent and self.waiting >= self.queued and not wait:
            raise Busy(f"{self.active} running and {self.waiting} waiting")
        self.waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
            self._semaphore.release()
