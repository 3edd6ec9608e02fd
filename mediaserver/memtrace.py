"""Diagnostics only: ``MS_DIAG_TRACEMALLOC=/path/report.txt`` makes ``serve`` trace
Python allocations (tracemalloc, 6 frames) and rewrite the report every 10 s: the top
allocation sites by line and by the first aiortc/mediaserver frame. Slows the server
down; never set in production or for timed bench figures.
``MS_DIAG_MALLOCSTATS=1``: pymalloc's statistics (``sys._debugmallocstats``) on stderr
every 10 s (cheap)."""

from __future__ import annotations

import os
import sys
import threading
import time
import tracemalloc

__all__ = ["start_from_env"]


def _report(path: str) -> None:
    snapshot = tracemalloc.take_snapshot().filter_traces(
        (tracemalloc.Filter(False, tracemalloc.__file__),)
    )
    total = sum(s.size for s in snapshot.statistics("filename"))
    lines = [f"traced {total / 2**20:.1f} MiB at {time.strftime('%H:%M:%S')}", ""]
    lines.append("== by line")
    for stat in snapshot.statistics("lineno")[:60]:
        frame = stat.traceback[0]
        lines.append(
            f"{stat.size / 1024:10.0f} KiB {stat.count:8d}  {frame.filename}:{frame.lineno}"
        )
    lines.append("")
    lines.append("== by traceback (top 40)")
    for stat in snapshot.statistics("traceback")[:40]:
        lines.append(f"{stat.size / 1024:10.0f} KiB {stat.count:8d}")
        lines.extend("      " + str(f) for f in stat.traceback)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def start_from_env() -> None:
    if os.environ.get("MS_DIAG_MALLOCSTATS"):  # pymalloc's arenas/pools, to stderr

        def stats() -> None:
            while True:
                time.sleep(10)
                sys._debugmallocstats()

        threading.Thread(target=stats, name="mallocstats", daemon=True).start()
    path = os.environ.get("MS_DIAG_TRACEMALLOC")
    if not path:
        return
    tracemalloc.start(6)

    def loop() -> None:
        while True:
            time.sleep(10)
            _report(path)

    threading.Thread(target=loop, name="memtrace", daemon=True).start()
