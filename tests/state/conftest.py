from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis_server import RedisServer


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server (AOF, appendfsync always) on a free loopback port, in a
    directory of its own; stopped at teardown (SIGKILL: a graceful SIGTERM waits for
    Redis' 100 ms cron tick, and its data is thrown away anyway)."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.kill()
