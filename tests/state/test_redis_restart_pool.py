"""Pooled Redis connections across a Redis restart: idle connections are checked
before reuse (health_check_interval) and a dead one is replaced (retry), so no request
fails after Redis is back."""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis_server import RedisServer

from mediaserver.state import RedisStore
from mediaserver.state.models import Tenant


async def test_no_request_fails_after_a_restart(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    store = RedisStore(server.url)
    try:
        await store.open()
        await store.create_tenant(Tenant(id="tn_1", name="One", created_at=1.0))
        # several pooled connections, all of them about to go stale
        assert all(await asyncio.gather(*(store.get_tenant("tn_1") for _ in range(8))))
        server.kill()
        server.start()  # same data (AOF)
        for _ in range(3):  # right away, and once the connections have idled
            tenants = await asyncio.gather(*(store.get_tenant("tn_1") for _ in range(8)))
            assert all(t is not None and t.name == "One" for t in tenants)
            await asyncio.sleep(1.2)
    finally:
        await store.close()
        server.close()
