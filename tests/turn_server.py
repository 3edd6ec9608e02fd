"""A real coturn (Debian's ``turnserver``) for tests: free ports, its own directory,
``use-auth-secret`` (short-lived credentials), no TLS, loopback (or a test namespace's
own address) only. Started and stopped by the tests themselves."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["TURNSERVER", "TurnServer", "running_turn"]

TURNSERVER = "/usr/bin/turnserver"
#: Private, loopback and link-local ranges a relay must not reach (operations.md §3).
DENIED_PEER_RANGES = (
    "0.0.0.0-0.255.255.255",
    "10.0.0.0-10.255.255.255",
    "100.64.0.0-100.127.255.255",
    "127.0.0.0-127.255.255.255",
    "169.254.0.0-169.254.255.255",
    "172.16.0.0-172.31.255.255",
    "192.168.0.0-192.168.255.255",
    "::1",
    "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
)


def _free_port(address: str) -> int:
    """A port free for both UDP and TCP (coturn listens on both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((address, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((address, port))
                except OSError:
                    continue
                return port


class TurnServer:
    def __init__(self, address: str = "127.0.0.1", *, sfu_address: str = "127.0.0.1") -> None:
        self.address = address
        self.sfu_address = sfu_address
        self.port = _free_port(address)
        self.secret = secrets.token_urlsafe(24)
        self.dir = Path(tempfile.mkdtemp(prefix="coturn-test-"))
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, transport: str = "udp") -> str:
        return f"turn:{self.address}:{self.port}?transport={transport}"

    def start(self, timeout: float = 10.0) -> None:
        relay = self.relay_min = _free_port(self.address)
        self.relay_max = relay + 40
        # The set-up of docs/operations.md §3 (TURN), on test ports, without TLS.
        conf = self.dir / "turnserver.conf"
        lines = [
            f"listening-ip={self.address}",
            f"listening-port={self.port}",
            f"relay-ip={self.address}",
            f"min-port={relay}",
            f"max-port={self.relay_max}",
            "use-auth-secret",
            f"static-auth-secret={self.secret}",
            "realm=mediaserver.test",
            "fingerprint",
            "no-tls",
            "no-dtls",
            "no-cli",
            "no-multicast-peers",
            *(f"denied-peer-ip={r}" for r in DENIED_PEER_RANGES),
            f"allowed-peer-ip={self.sfu_address}",  # the SFU's own address
            f"pidfile={self.dir / 'turnserver.pid'}",
            f"userdb={self.dir / 'turndb'}",
            f"log-file={self.dir / 'turn.log'}",
            "simple-log",
        ]
        if self.address.startswith("127."):
            lines.append("allow-loopback-peers")  # tests only: the SFU listens on loopback
        conf.write_text("\n".join(lines) + "\n")
        argv = [TURNSERVER, "-c", str(conf)]
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.dir
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"turnserver exited: {self.log()}")
            with socket.socket() as probe:
                if probe.connect_ex((self.address, self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"turnserver did not start: {self.log()}")

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.dir.glob("turn*.log"))

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def running_turn() -> Iterator[TurnServer]:
    """A started coturn for one test (module); the test is skipped without coturn."""
    if not os.path.exists(TURNSERVER):
        pytest.skip("coturn missing: run `make test` (it installs Debian's coturn)")
    server = TurnServer()
    server.start()
    try:
        yield server
    finally:
        server.close()
