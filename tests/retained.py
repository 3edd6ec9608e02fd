"""Python memory a repeated piece of work keeps (tracemalloc): the native path's tests
check that bursts of packets through the C code retain nothing per packet."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable


def retained_bytes(burst: Callable[[], None], rounds: int = 3) -> int:
    """Bytes still allocated after ``rounds`` more bursts than after the first traced
    one (run ``burst`` once before calling this, to fill caches)."""
    tracemalloc.start()
    try:
        burst()
        first = tracemalloc.get_traced_memory()[0]
        for _ in range(rounds):
            burst()
        return int(tracemalloc.get_traced_memory()[0] - first)
    finally:
        tracemalloc.stop()
