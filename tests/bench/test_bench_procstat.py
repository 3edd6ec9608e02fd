"""The bench's CPU figure (loadtests/procstat.cpu_seconds): every thread counted, at
a finer grain than the 10 ms clock ticks of /proc/PID/stat."""

from __future__ import annotations

import os
import threading
import time

from loadtests.procstat import CLK_TCK, cpu_seconds


def _burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_cpu_of_every_thread_is_counted():
    burnt, done = threading.Event(), threading.Event()

    def work() -> None:
        _burn(0.05)
        burnt.set()
        done.wait(10)  # alive at the reading: an ended thread leaves the sum

    before = cpu_seconds(os.getpid())
    worker = threading.Thread(target=work)
    worker.start()
    _burn(0.05)
    assert burnt.wait(10)
    used = cpu_seconds(os.getpid()) - before
    done.set()
    worker.join()
    assert 0.095 <= used < 0.5


def test_finer_than_a_clock_tick():
    tick = 1 / CLK_TCK
    readings = set()
    for _ in range(20):
        _burn(tick / 7)
        readings.add(round(cpu_seconds(os.getpid()) % tick, 6))
    assert len(readings) > 3  # /proc/PID/stat would give one value (0) every time
