"""What the bench reads about processes from /proc: CPU, run-queue wait, memory."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections import Counter

__all__ = [
    "JoinPhase",
    "cpu_seconds",
    "percentile",
    "rss_bytes",
    "run_delay_seconds",
    "udp_drops_by_address",
]

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time of a process: the sum of its threads' time on a CPU, in nanoseconds
    (schedstat). utime + stime (/proc/PID/stat) count in clock ticks (10 ms): a
    fan-out-10 window is ~90 ms of the server's CPU, so one tick more or less moved
    its figure by 11 % (session 6). Threads that ended leave the sum, so a window
    must not span a thread's end; /proc/PID/stat is the fallback without schedstat."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                    total += int(f.read().split()[0])
    except FileNotFoundError:
        total = 0
    if total:
        return total / 1e9
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def run_delay_seconds(pid: int) -> float:
    """Time the process's threads spent runnable but waiting for a CPU (schedstat): on a
    shared machine, how much of a window a process wanted to run and could not."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/schedstat") as f:
            total += int(f.read().split()[1])
    return total / 1e9


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def percentile(values: list[int], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(q * (len(values) - 1))))
    return float(values[k])


class JoinPhase:
    """CPU of the server and of the bots while the participants arrive."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.t0 = time.monotonic()
        self.server0 = cpu_seconds(server_pid)
        self.bots0 = cpu_seconds(os.getpid())

    def end(self) -> dict[str, float]:
        elapsed = time.monotonic() - self.t0
        return {
            "arrivals_seconds": elapsed,
            "arrivals_server_cpu_pct": 100
            * (cpu_seconds(self.server_pid) - self.server0)
            / elapsed,
            "arrivals_bots_cpu_pct": 100 * (cpu_seconds(os.getpid()) - self.bots0) / elapsed,
        }


def udp_drops_by_address() -> Counter[str]:
    """Datagrams the kernel dropped per local IPv4 address (the ``drops`` column of
    this network namespace's /proc/net/udp: a full receive buffer, i.e. a process that
    did not read in time). Sockets closed meanwhile drop out of the sum."""
    out: Counter[str] = Counter()
    with open("/proc/net/udp") as f:
        next(f)
        for line in f:
            fields = line.split()
            address = socket.inet_ntoa(bytes.fromhex(fields[1].split(":")[0])[::-1])
            out[address] += int(fields[-1])
    return out
