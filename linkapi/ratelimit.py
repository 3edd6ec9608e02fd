"""Per-tenant token bucket (per node), with the numbers of the RateLimit-* headers."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

__all__ = ["Decision", "RateLimiter"]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int  # the bucket's size (the burst)
    remaining: int  # whole requests left now
    reset: int  # seconds until the bucket is full again
    retry_after: int  # seconds until the next request is allowed (0 if allowed)

    def headers(self) -> dict[str, str]:
        """The RateLimit-Limit / -Remaining / -Reset headers (IETF draft, as in most APIs)."""
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
        }


class RateLimiter:
    """``per_minute`` requests refilled evenly over the minute, up to ``burst`` at once
    (``burst`` 0: ``per_minute``). ``check`` may name other numbers for one key (a
    tenant's own limit)."""

    def __init__(self, per_minute: int, burst: int = 0) -> None:
        self.per_minute = per_minute
        self.burst = burst or per_minute
        self._buckets: dict[str, tuple[float, float]] = {}
        self._clock = time.monotonic

    def check(
        self,
        key: str,
        now: float | None = None,
        *,
        per_minute: int | None = None,
        burst: int | None = None,
    ) -> Decision:
        """Take one token if there is one."""
        t = self._clock() if now is None else now
        rate = (per_minute or self.per_minute) / 60.0
        capacity = float(burst or (self.burst if per_minute is None else per_minute))
        tokens, last = self._buckets.get(key, (capacity, t))
        tokens = min(capacity, tokens + max(0.0, t - last) * rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[key] = (tokens, t)
        retry = 0 if allowed else max(1, math.ceil((1.0 - tokens) / rate))
        return Decision(
            allowed=allowed,
            limit=int(capacity),
            remaining=int(tokens),
            reset=math.ceil((capacity - tokens) / rate),
            retry_after=retry,
        )
