"""The bench's latency figure ends at the kernel's receive time of the datagram
(loadtests/rtp.py: SIOCGSTAMPNS), not when the bots' busy event loop reads it."""

from __future__ import annotations

import socket
import time

from loadtests.rtp import kernel_receive_ns


def test_kernel_receive_time_is_when_the_datagram_arrived_not_when_it_was_read():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.bind(("127.0.0.1", 0))
        assert kernel_receive_ns(rx.fileno()) is None  # nothing stamped yet: turned on
        sent = time.time_ns()
        tx.sendto(b"first", rx.getsockname())
        time.sleep(0.05)  # a bot's event loop busy elsewhere
        assert rx.recv(64) == b"first"
        read = time.time_ns()
        received = kernel_receive_ns(rx.fileno())
        assert received is not None
        assert sent <= received < sent + 40_000_000 < read
        tx.sendto(b"second", rx.getsockname())
        time.sleep(0.02)
        assert rx.recv(64) == b"second"
        later = kernel_receive_ns(rx.fileno())
        assert later is not None and later > received  # each datagram's own time
    finally:
        rx.close()
        tx.close()
