"""Where state lives ([state]: SQLite, memory or Redis) and the nodes that share it
([cluster])."""

import dataclasses
import os
from typing import Any, ClassVar

from .base import _error, _Validated

SUPPORTED_STATE_BACKENDS: tuple[str, ...] = ("sqlite", "memory", "redis")


@dataclasses.dataclass(frozen=True)
class StateConfig(_Validated):
    """Where room/participant state lives."""

    _key_prefix: ClassVar[str] = "state"

    backend: str = "sqlite"
    data_dir: str = "data"
    sqlite_path: str = ""  # empty: {data_dir}/mediaserver.db
    redis_url: str = dataclasses.field(
        default="redis://127.0.0.1:6379/0", metadata={"secret": True}
    )
    # Redis Sentinel: "host:port" of each sentinel and the service (master) name they
    # monitor; the primary is asked from them (redis_url then gives db and password).
    redis_sentinels: tuple[str, ...] = ()
    redis_sentinel_service: str = ""

    @property
    def redis_target(self) -> Any:
        """A :class:`mediaserver.state.redis_conn.RedisTarget`."""
        from ..state.redis_conn import RedisTarget, parse_sentinels

        return RedisTarget(
            self.redis_url, parse_sentinels(self.redis_sentinels), self.redis_sentinel_service
        )

    @property
    def effective_sqlite_path(self) -> str:
        return self.sqlite_path or os.path.join(self.data_dir, "mediaserver.db")

    def _validate(self) -> None:
        if self.backend not in SUPPORTED_STATE_BACKENDS:
            raise _error(
                self._key("backend"),
                f"unsupported backend {self.backend!r} "
                f"(supported: {', '.join(SUPPORTED_STATE_BACKENDS)})",
            )
        if not self.data_dir:
            raise _error(self._key("data_dir"), "must not be empty")
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise _error(self._key("redis_url"), "must start with redis://, rediss:// or unix://")
        for index, address in enumerate(self.redis_sentinels):
            host, sep, port = address.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise _error(self._key(f"redis_sentinels[{index}]"), "must be host:port")
        if self.redis_sentinels and not self.redis_sentinel_service:
            raise _error(self._key("redis_sentinel_service"), "must be set when redis_sentinels is")


@dataclasses.dataclass(frozen=True)
class ClusterConfig(_Validated):
    """Several nodes sharing Redis (used when state.backend = "redis")."""

    _key_prefix: ClassVar[str] = "cluster"

    node_id: str = ""  # empty: generated at start-up
    lease_seconds: float = 5.0
    heartbeat_seconds: float = 1.0

    def _validate(self) -> None:
        if self.node_id and not all(c.isalnum() or c in "-_." for c in self.node_id):
            raise _error(self._key("node_id"), "only letters, digits, '-', '_' and '.'")
        self._range("lease_seconds", self.lease_seconds, 1.0, 60.0, "between 1 and 60")
        self._range("heartbeat_seconds", self.heartbeat_seconds, 0.1, 10.0, "between 0.1 and 10")
        if self.heartbeat_seconds * 2 > self.lease_seconds:
            raise _error(
                self._key("heartbeat_seconds"), "must be at most half of cluster.lease_seconds"
            )
