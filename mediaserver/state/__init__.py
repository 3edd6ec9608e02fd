"""Durable state: the ``Store`` contract, its records and its two implementations."""

from __future__ import annotations

from .models import (
    ApiKey,
    DeliveryAttempt,
    GuestInvite,
    Link,
    OutboxEvent,
    Tenant,
    WebhookEndpoint,
    from_dict,
    to_dict,
)
from .redis_conn import RedisTarget
from .redis_store import RedisStore
from .sqlite import SqliteStore
from .store import ConflictError, Store

__all__ = [
    "BACKENDS",
    "ApiKey",
    "ConflictError",
    "DeliveryAttempt",
    "GuestInvite",
    "Link",
    "OutboxEvent",
    "RedisStore",
    "SqliteStore",
    "Store",
    "Tenant",
    "WebhookEndpoint",
    "create_store",
    "from_dict",
    "to_dict",
]

BACKENDS = ("sqlite", "memory", "redis")


def create_store(backend: str, *, sqlite_path: str, redis_url: str | RedisTarget) -> Store:
    """The store for ``backend``: ``"sqlite"`` (the file ``sqlite_path``), ``"memory"``
    (SQLite ``:memory:``, gone when the process ends) or ``"redis"`` (``redis_url``: a
    URL, or a :class:`RedisTarget` with Sentinel). The store still has to be ``open()``-ed."""
    if backend == "sqlite":
        return SqliteStore(sqlite_path)
    if backend == "memory":
        return SqliteStore(":memory:")
    if backend == "redis":
        return RedisStore(redis_url)
    raise ValueError(f"unknown state backend {backend!r} (expected one of {', '.join(BACKENDS)})")
