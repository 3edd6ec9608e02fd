"""Per-API-key token bucket (per node)."""

from __future__ import annotations

import math
import time

__all__ = ["RateLimiter"]


class RateLimiter:
    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}
        self._clock = time.monotonic

    def check(self, key: str, now: float | None = None) -> float:
        """Take one token; returns 0 if allowed, else seconds until one is available."""
        t = self._clock() if now is None else now
        tokens, last = self._buckets.get(key, (self.capacity, t))
        tokens = min(self.capacity, tokens + (t - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, t)
            return 0.0
        self._buckets[key] = (tokens, t)
        return max(1.0, math.ceil((1.0 - tokens) / self.rate))
