"""The plumbing of ``RedisStore``: the connection, the scripts (a write waits for a
replica's acknowledgement when there is one), and the generic record operations every
part of the store is built on (insert with unique fields and indexes, get, list by an
index, set a field once). See ``redis_store`` for durability and atomicity.
"""

from __future__ import annotations

import dataclasses
import json
import math
import string
import time
from collections.abc import Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import WatchError

from . import redis_manage
from .models import from_dict, to_dict
from .redis_conn import RedisTarget, connect
from .redis_keys import KEY_LINK, KEY_LINK_UPDATES_BUILT, KEY_TENANT_LINK_UPDATES
from .redis_scripts import LUA_PRELUDE, SCRIPTS, WRITE_SCRIPTS
from .store import ConflictError

__all__ = [
    "REPLICA_CHECK_SECONDS",
    "REPLICA_WAIT_MS",
    "RedisStoreBase",
    "dumps",
    "glob_escape",
    "load",
    "score",
]

T = TypeVar("T")


def dumps(obj: Any) -> str:
    return json.dumps(to_dict(obj), separators=(",", ":"), sort_keys=True)


def load(cls: type[T], data: str) -> T:
    return from_dict(cls, json.loads(data))


def glob_escape(text: str) -> str:
    """``text`` matched literally by a SCAN ``MATCH`` pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def score(value: float) -> str:
    """A zset score exactly as Python has it (``repr`` round-trips a float)."""
    return repr(float(value))


#: How long a write waits for a replica's acknowledgement (then: unavailable, 503).
REPLICA_WAIT_MS = 2000
REPLICA_CHECK_SECONDS = 5.0


class RedisStoreBase:
    """The connection and the generic record operations of ``RedisStore``."""

    def __init__(self, url: str | RedisTarget, *, prefix: str = "ms:") -> None:
        self.url = url
        self.prefix = prefix
        self._client: aioredis.Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self._replicas = 0
        self._replicas_checked = -math.inf

    # --- plumbing -----------------------------------------------------------------
    async def open(self) -> None:
        if self._client is not None:
            return
        client = connect(self.url, timeout=2.0, decode_responses=True)
        try:
            await client.ping()
        except BaseException:
            await client.aclose()
            raise
        self._scripts = {
            name: client.register_script(LUA_PRELUDE + source) for name, source in SCRIPTS.items()
        }
        try:
            await redis_manage.build_link_update_index(
                client,
                link_pattern=glob_escape(self._key(KEY_LINK, id="")) + "*",
                index_key=lambda tenant_id: self._key(KEY_TENANT_LINK_UPDATES, tenant_id=tenant_id),
                marker=self._key(KEY_LINK_UPDATES_BUILT),
            )
        except BaseException:
            await client.aclose()
            raise
        self._client = client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    @property
    def _r(self) -> aioredis.Redis:
        if self._client is None:
            raise RuntimeError("RedisStore is not open (call open() first)")
        return self._client

    def _key(self, template: str, **fields: str) -> str:
        return template.format(p=self.prefix, **fields)

    def _record_prefix(self, template: str) -> str:
        """The key of a record minus its trailing id (every record key ends with it)."""
        last = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None][-1]
        return self._key(template, **{last: ""})

    async def _script(self, name: str, *args: str) -> Any:
        if self._client is None:
            raise RuntimeError("RedisStore is not open (call open() first)")
        if name not in WRITE_SCRIPTS or not await self._has_replicas():
            return await self._scripts[name](args=[self.prefix, *args])
        # WAIT covers the writes of its own connection: one pipeline, one connection
        async with self._client.pipeline(transaction=False) as pipe:
            await self._scripts[name](args=[self.prefix, *args], client=pipe)
            pipe.execute_command("WAIT", 1, REPLICA_WAIT_MS)
            result, acked = await pipe.execute()
        if int(acked) < 1 and await self._has_replicas(refresh=True):
            raise RedisTimeoutError("no replica acknowledged the write in time")
        return result  # (or the replica is gone: nothing to fail over to either)

    async def _has_replicas(self, *, refresh: bool = False) -> bool:
        """Whether the primary has a replica now (asked at most every few seconds): then
        a write is acknowledged only once a replica has it, so that a failover to that
        replica loses no acknowledged write."""
        now = time.monotonic()
        if refresh or now >= self._replicas_checked + REPLICA_CHECK_SECONDS:
            info = await self._r.info("replication")
            self._replicas = int(info.get("connected_slaves", 0))
            self._replicas_checked = now
        return self._replicas > 0

    async def _insert(
        self,
        key: str,
        member: str,
        body: str,
        *,
        unique: Sequence[tuple[str, str]] = (),
        index: Sequence[tuple[str, float]] = (),
    ) -> None:
        spec = {
            "key": key,
            "member": member,
            "unique": [list(u) for u in unique],
            "index": [[zset, score(at)] for zset, at in index],
        }
        result = await self._script("insert", json.dumps(spec), body)
        if result[0] == "conflict":
            raise ConflictError(result[1])

    async def _get(self, cls: type[T], key: str) -> T | None:
        raw = await self._r.get(key)
        return None if raw is None else load(cls, str(raw))

    async def _list_raw(
        self, zset: str, record_template: str, *, newest_first: bool, limit: int
    ) -> list[str]:
        """The JSON of the records indexed by ``zset``, in score order (``limit`` -1: all)."""
        if limit == 0:
            return []
        rows = await self._script(
            "list",
            zset,
            self._record_prefix(record_template),
            "1" if newest_first else "0",
            str(limit),
        )
        return [str(row) for row in rows]

    async def _list(
        self, cls: type[T], zset: str, record_template: str, *, newest_first: bool, limit: int
    ) -> list[T]:
        rows = await self._list_raw(zset, record_template, newest_first=newest_first, limit=limit)
        return [load(cls, row) for row in rows]

    async def _set_once(self, key: str, cls: type[Any], field: str, at: float) -> bool:
        """Set the record's ``field`` to ``at`` unless already set; False if missing."""
        async with self._r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        return False
                    record = load(cls, str(raw))
                    if getattr(record, field) is not None:
                        return True
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, dumps(dataclasses.replace(record, **{field: at})))
                    await pipe.execute()
                    return True
                except WatchError:
                    continue
