"""The three-node cluster fixture (a real redis-server on a free port)."""

from __future__ import annotations

import pytest
from cluster_nodes import Node
from redis_server import RedisServer


@pytest.fixture
async def cluster(tmp_path):
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    nodes = [Node(n, redis.url, tmp_path) for n in ("node-a", "node-b", "node-c")]
    for n in nodes:
        n.start()
    try:
        for n in nodes:
            await n.ready()
        yield redis, nodes
    finally:
        for n in nodes:
            n.stop()
        redis.kill()
        redis.close()
