"""A real, private ``redis-server`` for tests: loopback, a free port, its own directory,
AOF with ``appendfsync always`` (the configuration the Redis store's durability needs).

Never the machine's default Redis on 6379, and never an in-process imitation of Redis.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["RedisServer"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """``start()`` runs it and waits for PING; ``stop()`` terminates it (SIGTERM, wait),
    ``kill()`` SIGKILLs it; ``start()`` again reuses the same port and directory, so a
    restarted server replays its append-only file. ``close()`` stops it and removes a
    directory it made itself."""

    def __init__(
        self, directory: Path | None = None, *, port: int | None = None, args: tuple[str, ...] = ()
    ) -> None:
        self.args = args  # more redis-server options, e.g. ("--replicaof", host, port)
        self._own_dir = directory is None
        self.dir = Path(tempfile.mkdtemp(prefix="redis-test-")) if directory is None else directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port if port is not None else _free_port()
        self._port_fixed = port is not None  # given, or a server already ran on it
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.dir / "redis.log"

    def start(self, timeout: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("redis-server is already running")
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not on PATH: run `make test` (it installs it via "
                "scripts/ensure-system-deps.sh)"
            )
        for tries_left in range(4, -1, -1):
            try:
                self._start_once(binary, timeout)
            except _PortInUse:
                # A port picked as free was taken meanwhile; only a first start may move.
                if self._port_fixed or tries_left == 0:
                    raise
                self.port = _free_port()
            else:
                self._port_fixed = True
                return

    def _start_once(self, binary: str, timeout: float) -> None:
        args = [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.dir),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--daemonize",
            "no",
            "--logfile",
            "",
            *self.args,
        ]
        with open(self.log_path, "ab") as log:
            log_start = log.tell()
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            code = proc.poll()
            if code is not None:
                with open(self.log_path, "rb") as log:
                    log.seek(log_start)
                    output = log.read().decode(errors="replace")
                if "Address already in use" in output:
                    raise _PortInUse(output)
                raise RuntimeError(f"redis-server exited with {code}:\n{output[-2000:]}")
            if self._ping():
                self.proc = proc
                return
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"redis-server did not answer PING within {timeout} s")
            time.sleep(0.01)

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final AOF rewrite; what was fsynced is all there is."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


class _PortInUse(RuntimeError):
    pass
