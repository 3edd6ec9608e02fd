"""How every Redis client of a node is built: one primary by URL, or the primary that
Redis Sentinel names; health-checked pooled connections, retried on connection errors.

A pooled connection that sat idle across a Redis restart is stale: without a health
check its first command fails (a one-off 500 or ``unavailable`` seconds after Redis
came back). ``health_check_interval`` PINGs a connection idle for longer before
reusing it, and ``retry`` repeats a command once on a fresh connection when the old
one turned out dead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["UNREACHABLE", "RedisTarget", "connect", "parse_sentinels"]

#: Errors that mean "the store is unreachable now" (as opposed to a bug): the link API
#: answers 503, signalling ``unavailable``. A replica that is not primary (yet) refuses
#: writes with READONLY: during a failover, that is unreachable too.
UNREACHABLE: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, ReadOnlyError)


@dataclass(frozen=True)
class RedisTarget:
    """``url`` alone, or with ``sentinels`` the ``service`` they monitor (the URL then
    only contributes its database number, user and password)."""

    url: str
    sentinels: tuple[tuple[str, int], ...] = field(default=())
    service: str = ""


def parse_sentinels(addresses: Sequence[str]) -> tuple[tuple[str, int], ...]:
    """``["10.0.0.5:26379", "[::1]:26379"]`` → ``((host, port), ...)``."""
    out = []
    for address in addresses:
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"{address!r}: expected host:port")
        out.append((host.strip("[]"), int(port)))
    return tuple(out)


def connect(
    target: RedisTarget | str,
    *,
    timeout: float,
    health_check_interval: float = 1.0,
    decode_responses: bool = False,
) -> aioredis.Redis:
    """A client for the current primary."""
    if isinstance(target, str):
        target = RedisTarget(target)
    common: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": health_check_interval,
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
        "retry_on_error": [RedisConnectionError],
        "retry_on_timeout": False,
        "decode_responses": decode_responses,
    }
    if not target.sentinels:
        return aioredis.Redis.from_url(target.url, **common)
    kw = aioredis.connection.parse_url(target.url)  # db, username, password
    kw.pop("host", None)
    kw.pop("port", None)
    kw.pop("connection_class", None)
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels),
        sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout},
    )
    client: aioredis.Redis = sentinel.master_for(target.service, **{**kw, **common})
    return client
