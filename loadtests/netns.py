"""A private network namespace for benchmarks.

Janus (libnice) ignores loopback interfaces when it gathers ICE candidates, so a
benchmark cannot run everything on ``lo``. Instead we create one network namespace
holding a veth pair whose *both* ends live inside it: the server side (``msb0``,
10.77.0.1/24) and the bots side (``msb1``, 10.77.0.2/24). Nothing in the namespace
is routed anywhere else, so no benchmark packet can leave the machine.

Because both addresses are local to the namespace, the kernel would normally
short-cut traffic between them through ``lo`` and drop "martian" packets arriving
on a veth with a local source; ``accept_local=1`` and ``rp_filter=0`` on both ends
(and ``all.rp_filter=0``) make the packets actually traverse the veth pair.

Needs root (CAP_NET_ADMIN + CAP_SYS_ADMIN).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from types import TracebackType

__all__ = ["BenchNetns"]

_NETNS_DIR = Path("/var/run/netns")
_TIMEOUT = 10.0


def _run(argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=_TIMEOUT)


class BenchNetns:
    """Context manager: ``with BenchNetns() as ns: Popen(ns.cmd([...], cpu=0))``.

    ``cmd`` builds an exec chain (``ip netns exec`` execs ``taskset`` which execs the
    program; neither forks), so the pid of a ``Popen`` on it is the pid of the final
    program and signals sent to it reach the program directly.
    """

    server_if = "msb0"
    bot_if = "msb1"
    server_ip = "10.77.0.1"
    bot_ip = "10.77.0.2"
    prefix = 24

    def __init__(self, name: str | None = None) -> None:
        self.name = name if name is not None else f"msbench-{os.getpid()}"

    # -- lifecycle -----------------------------------------------------------------

    def __enter__(self) -> BenchNetns:
        self.create()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.delete()

    def exists(self) -> bool:
        return (_NETNS_DIR / self.name).exists()

    def create(self) -> None:
        """Create the namespace (removing a stale one with the same name first)."""
        self.delete()
        _run(["ip", "netns", "add", self.name])
        try:
            self._setup()
        except BaseException:
            self.delete()
            raise

    def _setup(self) -> None:
        n = self.name
        # Create the pair directly inside the namespace: it never exists in ours.
        veth = ["type", "veth", "peer", "name", self.bot_if]
        _run(["ip", "-n", n, "link", "add", self.server_if, *veth])
        for dev, ip in ((self.server_if, self.server_ip), (self.bot_if, self.bot_ip)):
            _run(["ip", "-n", n, "addr", "add", f"{ip}/{self.prefix}", "dev", dev])
        sysctls = [
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
            f"net.ipv4.conf.{self.server_if}.rp_filter=0",
            f"net.ipv4.conf.{self.bot_if}.rp_filter=0",
            f"net.ipv4.conf.{self.server_if}.accept_local=1",
            f"net.ipv4.conf.{self.bot_if}.accept_local=1",
        ]
        _run(["ip", "netns", "exec", n, "sysctl", "-q", "-w", *sysctls])
        for dev in ("lo", self.server_if, self.bot_if):
            _run(["ip", "-n", n, "link", "set", dev, "up"])

    def delete(self) -> None:
        """Delete the namespace if it exists (idempotent); the veth pair goes with it."""
        if self.exists():
            _run(["ip", "netns", "delete", self.name], check=False)

    # -- helpers -------------------------------------------------------------------

    def cmd(self, argv: list[str], cpu: int | None = None) -> list[str]:
        """``argv`` run inside the namespace, pinned to ``cpu`` if given (exec chain)."""
        pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
        return ["ip", "netns", "exec", self.name, *pin, *argv]

    def run(self, argv: list[str], *, timeout: float = _TIMEOUT) -> str:
        """Run ``argv`` in the namespace, return its stdout (raises on failure)."""
        return subprocess.run(
            self.cmd(argv), check=True, capture_output=True, text=True, timeout=timeout
        ).stdout

    def __repr__(self) -> str:
        return f"BenchNetns({self.name!r}, server={self.server_ip}, bots={self.bot_ip})"
