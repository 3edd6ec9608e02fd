"""Rate limit for repeated log lines that a client can trigger (one per connection).

At most ``burst`` lines of the same event per ``interval`` seconds; the rest are counted,
and the next line of that event that gets through carries ``suppressed=<count>``.
Pure logic with the clock passed in (:meth:`LogThrottle.allow`); :meth:`warning` and
:meth:`exception` write through a structlog logger.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["LOG_BURST", "LOG_INTERVAL_SECONDS", "LogThrottle"]

LOG_BURST = 5
LOG_INTERVAL_SECONDS = 60.0


class LogThrottle:
    def __init__(
        self,
        log: Any,
        *,
        burst: int = LOG_BURST,
        interval: float = LOG_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = log
        self.burst = burst
        self.interval = interval
        self.clock = clock
        self._windows: dict[str, tuple[float, int, int]] = {}  # start, logged, suppressed

    def allow(self, key: str, now: float) -> tuple[bool, int]:
        """(log it?, lines suppressed before it); counts a suppressed line otherwise."""
        start, logged, suppressed = self._windows.get(key, (now, 0, 0))
        if now - start >= self.interval:
            start, logged = now, 0
        if logged < self.burst:
            self._windows[key] = (start, logged + 1, 0)
            return True, suppressed
        self._windows[key] = (start, logged, suppressed + 1)
        return False, 0

    def _emit(self, method: str, event: str, fields: dict[str, Any]) -> None:
        ok, suppressed = self.allow(event, self.clock())
        if ok:
            extra = {"suppressed": suppressed} if suppressed else {}
            getattr(self.log, method)(event, **fields, **extra)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit("warning", event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        self._emit("exception", event, fields)
