"""A private ``redis-sentinel`` for tests (loopback, a free port, its own directory)
monitoring one primary as the service ``SERVICE`` (quorum 1, down after 1 s)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from redis_server import _free_port

__all__ = ["SERVICE", "Sentinel"]

SERVICE = "mymaster"


class Sentinel:
    def __init__(self, directory: Path, primary_port: int) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.conf = self.dir / "sentinel.conf"
        self.conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
            f"sentinel failover-timeout {SERVICE} 5000\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        binary = shutil.which("redis-sentinel")
        if binary is None:
            raise RuntimeError("redis-sentinel is not on PATH: run `make test`")
        with open(self.dir / "sentinel.log", "ab") as log:
            self.proc = subprocess.Popen(
                [binary, str(self.conf)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while not self.primary():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("redis-sentinel did not start")
            time.sleep(0.05)

    def primary(self) -> int | None:
        """The port of the primary the sentinel names now."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(f"SENTINEL get-master-addr-by-name {SERVICE}\r\n".encode())
                reply = sock.recv(256).decode()
        except OSError:
            return None
        lines = reply.split("\r\n")
        return int(lines[4]) if len(lines) > 4 and lines[4].isdigit() else None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
