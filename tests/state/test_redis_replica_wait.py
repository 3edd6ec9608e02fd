"""With a replica, a Redis store write is acknowledged only once the replica has it
(WAIT): a failover to that replica loses nothing acknowledged."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis_server import RedisServer

from mediaserver.state import RedisStore
from mediaserver.state.models import Tenant


async def test_writes_wait_for_the_replica(tmp_path: Path) -> None:
    primary = RedisServer(tmp_path / "primary")
    primary.start()
    replica = RedisServer(
        tmp_path / "replica", args=("--replicaof", "127.0.0.1", str(primary.port))
    )
    replica.start()
    store = RedisStore(primary.url)
    try:
        r = aioredis.from_url(replica.url)
        deadline = time.monotonic() + 20
        while (await r.info("replication")).get("master_link_status") != "up":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        await r.aclose()
        await store.open()
        await store.create_tenant(Tenant(id="tn_1", name="One", created_at=1.0))
        assert replica.proc is not None
        replica.proc.send_signal(signal.SIGSTOP)  # the replica stops acknowledging
        try:
            with pytest.raises(RedisTimeoutError):
                await store.create_tenant(Tenant(id="tn_2", name="Two", created_at=2.0))
        finally:
            replica.proc.send_signal(signal.SIGCONT)
        await store.create_tenant(Tenant(id="tn_3", name="Three", created_at=3.0))
        r = aioredis.from_url(replica.url)  # what was acknowledged is on the replica
        try:
            assert await r.exists("ms:tenant:tn_1") and await r.exists("ms:tenant:tn_3")
        finally:
            await r.aclose()
    finally:
        await store.close()
        replica.close()
        primary.close()
