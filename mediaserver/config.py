"""Typed configuration for mediaserver.

Layers, later wins: built-in defaults -> TOML file (optional) -> ``MEDIASERVER_*``
environment variables. Every value is type checked strictly (a boolean is not an
integer, an integer is accepted where a float is expected) and range checked; every
error is a :class:`ConfigError` whose message names the offending key by its full
dotted path, e.g. ``rooms.max_participants: expected integer, got string 'ten'``,
followed by where the value came from.

Environment variables are named ``MEDIASERVER_<SECTION>_<KEY>`` in upper case, e.g.
``MEDIASERVER_SERVER_PORT=9000``. Section names contain no underscore, so the first
token after the prefix is the section. ``MEDIASERVER_CONFIG`` is reserved for the
config file path (read by the CLI, not by :func:`load_config`) and is ignored here, like
``MEDIASERVER_PURE_PYTHON`` (read by mediaserver.sfu.fastpath at import).
"""

import dataclasses
import ipaddress
import json
import math
import os
import re
import tomllib
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar, get_args, get_origin
from urllib.parse import urlsplit

__all__ = [
    "ENV_CONFIG_PATH",
    "ENV_PREFIX",
    "ENV_PURE_PYTHON",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "RECORDING_POLICIES",
    "SECRET_MASK",
    "SUPPORTED_STATE_BACKENDS",
    "AccountsConfig",
    "ClusterConfig",
    "Config",
    "ConfigError",
    "IceServer",
    "LinkApiConfig",
    "LoggingConfig",
    "MetricsConfig",
    "RecordingConfig",
    "RoomsConfig",
    "RtcConfig",
    "ServerConfig",
    "SignallingConfig",
    "StateConfig",
    "TurnConfig",
    "announced_map",
    "config_to_dict",
    "load_config",
]

ENV_PREFIX = "MEDIASERVER_"
ENV_CONFIG_PATH = "MEDIASERVER_CONFIG"
#: ``1`` forces the pure-Python forwarding path (mediaserver.sfu.fastpath); not a setting.
ENV_PURE_PYTHON = "MEDIASERVER_PURE_PYTHON"
SUPPORTED_STATE_BACKENDS: tuple[str, ...] = ("sqlite", "memory", "redis")
LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error")
LOG_FORMATS: tuple[str, ...] = ("json", "console")
SECRET_MASK = "***"
RECORDING_POLICIES: tuple[str, ...] = ("off", "host", "always")

_ICE_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")
# Same shape as aiortc's STUN_REGEX / TURN_REGEX, so a URL accepted here is one
# aiortc can parse (host without ':' or '?', optional port, optional transport).
_ICE_URL_RE = re.compile(
    r"(?P<scheme>stuns?|turns?):(?P<host>[^?:]+)(?::(?P<port>[0-9]+))?"
    r"(?:\?transport=(?P<transport>.*))?"
)
_INT_RE = re.compile(r"[+-]?[0-9]+")
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})

_T = TypeVar("_T")


class ConfigError(Exception):
    """Invalid configuration.

    ``str(error)`` is the full message; ``key`` is the dotted path of the offending
    setting when there is one (``None`` for file-level problems).
    """

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.key = key


def _error(key: str, detail: str) -> ConfigError:
    return ConfigError(f"{key}: {detail}", key=key)


def _describe(value: object, *, secret: bool = False) -> str:
    """Human description of a raw value for error messages ("string 'ten'")."""
    if isinstance(value, bool):
        kind, text = "boolean", "true" if value else "false"
    elif isinstance(value, int):
        kind, text = "integer", str(value)
    elif isinstance(value, float):
        kind, text = "float", repr(value)
    elif isinstance(value, str):
        kind = "string"
        text = repr(value) if len(value) <= 60 else repr(value[:60]) + "..."
    elif isinstance(value, list | tuple):
        return "array"
    elif isinstance(value, dict):
        return "table"
    elif value is None:
        return "null"
    else:
        return type(value).__name__
    return kind if secret else f"{kind} {text}"


def _check(value: object, tp: object, key: str, *, secret: bool = False) -> object:
    """Strictly type check ``value`` against a field type; return the normalised value."""
    expected: str
    if tp is bool:
        if isinstance(value, bool):
            return value
        expected = "boolean"
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        expected = "integer"
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
            if not math.isfinite(number):
                raise _error(key, f"expected a finite number, got {_describe(value)}")
            return number
        expected = "number"
    elif tp is str:
        if isinstance(value, str):
            return value
        expected = "string"
    elif get_origin(tp) is tuple:
        item_tp = get_args(tp)[0]
        if isinstance(value, list | tuple):
            return tuple(
                _check(item, item_tp, f"{key}[{index}]", secret=secret)
                for index, item in enumerate(value)
            )
        expected = "array"
    elif isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, dict):
            return _build(tp, value, key)
        expected = "table"
    else:  # pragma: no cover - programming error in this module
        raise TypeError(f"unsupported config field type {tp!r}")
    raise _error(key, f"expected {expected}, got {_describe(value, secret=secret)}")


def _build(cls: type[_T], data: Mapping[str, object], key: str) -> _T:
    """Construct dataclass ``cls`` from a table found at dotted path ``key``."""
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for name in data:
        if name not in known:
            if key:
                raise ConfigError(f"unknown key '{key}.{name}'", key=f"{key}.{name}")
            raise ConfigError(f"unknown section {name!r}", key=name)
    for name, fld in known.items():
        missing = fld.default is dataclasses.MISSING
        if missing and fld.default_factory is dataclasses.MISSING and name not in data:
            raise _error(f"{key}.{name}" if key else name, "required key missing")
    try:
        return cls(**data)
    except ConfigError as exc:
        # Classes without a fixed place in the tree (IceServer) report keys relative to
        # themselves; put them under the path they were found at.
        if getattr(cls, "_key_prefix", "") or not key or exc.key is None:
            raise
        raise ConfigError(f"{key}.{exc.message}", key=f"{key}.{exc.key}") from None


class _Validated:
    """Base for config dataclasses: strict type check, then per-class range checks."""

    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]
    _key_prefix: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for fld in dataclasses.fields(self):
            value = getattr(self, fld.name)
            secret = bool(fld.metadata.get("secret", False))
            checked = _check(value, fld.type, self._key(fld.name), secret=secret)
            if checked is not value:
                object.__setattr__(self, fld.name, checked)
        self._validate()

    def _key(self, name: str) -> str:
        return f"{self._key_prefix}.{name}" if self._key_prefix else name

    def _set(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)

    def _range(
        self, name: str, value: float, low: float | None, high: float | None, text: str
    ) -> None:
        if (low is not None and value < low) or (high is not None and value > high):
            raise _error(self._key(name), f"must be {text}, got {value!r}")

    def _choice(self, name: str, value: str, allowed: tuple[str, ...]) -> str:
        lowered = value.lower()
        if lowered not in allowed:
            raise _error(self._key(name), f"must be one of {', '.join(allowed)}, got {value!r}")
        return lowered

    def _validate(self) -> None:
        """Range / semantic checks; types are already checked."""


def _ip_error(key: str, value: str) -> ConfigError | None:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return _error(key, f"not a valid IP address: {value!r}")
    if address.is_unspecified:
        return _error(key, f"must be a specific address, not the unspecified address {value!r}")
    return None


@dataclasses.dataclass(frozen=True)
class ServerConfig(_Validated):
    """HTTP/WebSocket listener."""

    _key_prefix: ClassVar[str] = "server"

    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""
    shutdown_grace_seconds: float = 10.0

    def _validate(self) -> None:
        if not self.host.strip():
            raise _error(self._key("host"), "must not be empty")
        self._range("port", self.port, 1, 65535, "between 1 and 65535")
        if self.public_url:
            if not self.public_url.startswith(("http://", "https://")):
                raise _error(
                    self._key("public_url"),
                    f"must start with http:// or https://, got {self.public_url!r}",
                )
            if not urlsplit(self.public_url).netloc:
                raise _error(self._key("public_url"), f"has no host: {self.public_url!r}")
            self._set("public_url", self.public_url.rstrip("/"))
        if not 0 < self.shutdown_grace_seconds <= 300:
            raise _error(
                self._key("shutdown_grace_seconds"),
                f"must be greater than 0 and at most 300, got {self.shutdown_grace_seconds!r}",
            )

    @property
    def effective_public_url(self) -> str:
        """``public_url`` if set, else ``http://{host}:{port}`` (IPv6 hosts bracketed)."""
        if self.public_url:
            return self.public_url
        host = self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


@dataclasses.dataclass(frozen=True)
class IceServer(_Validated):
    """A STUN/TURN server, handed to clients and used by the server's own ICE agent.

    ``urls`` also accepts a single string (as WebRTC's RTCIceServer does).
    """

    urls: tuple[str, ...]
    username: str = ""
    credential: str = dataclasses.field(default="", metadata={"secret": True})

    def __post_init__(self) -> None:
        if isinstance(self.urls, str):
            self._set("urls", (self.urls,))
        super().__post_init__()

    def _validate(self) -> None:
        if not self.urls:
            raise _error("urls", "must contain at least one URL")
        needs_auth = False
        for index, url in enumerate(self.urls):
            key = f"urls[{index}]"
            if not url.startswith(_ICE_SCHEMES):
                raise _error(key, f"must start with stun:, stuns:, turn: or turns:, got {url!r}")
            match = _ICE_URL_RE.fullmatch(url)
            if match is None:
                raise _error(key, f"malformed STUN/TURN URL {url!r}")
            scheme, port, transport = match.group("scheme", "port", "transport")
            if port is not None and not 1 <= int(port) <= 65535:
                raise _error(key, f"port must be between 1 and 65535 in {url!r}")
            if transport is not None:
                if scheme.startswith("stun"):
                    raise _error(key, f"{scheme}: URLs take no transport: {url!r}")
                if transport not in ("udp", "tcp"):
                    raise _error(key, f"transport must be udp or tcp in {url!r}")
            needs_auth = needs_auth or scheme.startswith("turn")
        if needs_auth:
            # WebRTC (RFC 9429 / W3C) rejects TURN servers without both of these.
            for name in ("username", "credential"):
                if not getattr(self, name):
                    raise _error(name, "required for turn:/turns: URLs")


@dataclasses.dataclass(frozen=True)
class RtcConfig(_Validated):
    """ICE / media transport settings."""

    _key_prefix: ClassVar[str] = "rtc"

    ice_addresses: tuple[str, ...] = ()
    announced_address: str = ""
    announced_addresses: tuple[str, ...] = ()
    port_min: int = 0
    port_max: int = 0
    udp_port: int = 0
    worker_udp_ports: tuple[int, ...] = ()
    ice_servers: tuple[IceServer, ...] = ()
    #: REMB sent to a simulcast publisher: the budget for all its layers together
    simulcast_uplink_bitrate: int = 3_000_000
    #: the join page publishes camera video as three simulcast layers
    simulcast_publish: bool = True

    def _validate(self) -> None:
        if not 100_000 <= self.simulcast_uplink_bitrate <= 50_000_000:
            raise _error(
                self._key("simulcast_uplink_bitrate"),
                f"must be between 100000 and 50000000 bits/s, got {self.simulcast_uplink_bitrate}",
            )
        for index, address in enumerate(self.ice_addresses):
            problem = _ip_error(self._key(f"ice_addresses[{index}]"), address)
            if problem is not None:
                raise problem
        if self.announced_address:
            problem = _ip_error(self._key("announced_address"), self.announced_address)
            if problem is not None:
                raise problem
        for index, pair in enumerate(self.announced_addresses):
            key = self._key(f"announced_addresses[{index}]")
            local, sep, public = pair.partition("=")
            if not sep:
                raise _error(key, f"expected 'local=announced' (two IP addresses), got {pair!r}")
            for side in (local.strip(), public.strip()):
                problem = _ip_error(key, side)
                if problem is not None:
                    raise problem
        for name in ("port_min", "port_max"):
            value: int = getattr(self, name)
            if value != 0 and not 1024 <= value <= 65535:
                raise _error(
                    self._key(name),
                    f"must be 0 (ephemeral) or between 1024 and 65535, got {value}",
                )
        if (self.port_min == 0) != (self.port_max == 0):
            unset, other = (
                ("port_max", "port_min") if self.port_max == 0 else ("port_min", "port_max")
            )
            raise _error(
                self._key(unset),
                f"must be set together with {self._key(other)} "
                "(set both, or both to 0 for ephemeral ports)",
            )
        if self.port_min > self.port_max:
            raise _error(
                self._key("port_max"),
                f"must be >= {self._key('port_min')} ({self.port_min}), got {self.port_max}",
            )
        ports = [("udp_port", self.udp_port)] + [
            (f"worker_udp_ports[{i}]", p) for i, p in enumerate(self.worker_udp_ports)
        ]
        for name, value in ports:
            if value != 0 and not 1024 <= value <= 65535:
                raise _error(self._key(name), f"must be between 1024 and 65535, got {value}")
        if (self.udp_port or self.worker_udp_ports) and self.port_min:
            raise _error(
                self._key("udp_port"),
                f"one media port and {self._key('port_min')}/port_max are alternatives: "
                "set one of them",
            )


def announced_map(rtc: RtcConfig) -> dict[str, str]:
    """``rtc.announced_addresses`` as {local address: announced address}."""
    pairs = (p.partition("=") for p in rtc.announced_addresses)
    return {local.strip(): public.strip() for local, _, public in pairs}


@dataclasses.dataclass(frozen=True)
class TurnConfig(_Validated):
    """A TURN server with short-lived credentials (coturn ``use-auth-secret``)."""

    _key_prefix: ClassVar[str] = "turn"

    urls: tuple[str, ...] = ()
    secret: str = dataclasses.field(default="", metadata={"secret": True})
    ttl_seconds: int = 86400

    def _validate(self) -> None:
        for index, url in enumerate(self.urls):
            key = self._key(f"urls[{index}]")
            match = _ICE_URL_RE.fullmatch(url)
            if match is None or not url.startswith(("turn:", "turns:")):
                raise _error(key, f"must be a turn: or turns: URL, got {url!r}")
        if self.urls and len(self.secret) < 16:
            raise _error(
                self._key("secret"),
                "must be set (at least 16 characters; coturn's static-auth-secret) "
                "when turn.urls is set",
            )
        if not 60 <= self.ttl_seconds <= 7 * 86400:
            raise _error(
                self._key("ttl_seconds"), f"must be between 60 and 604800, got {self.ttl_seconds}"
            )


@dataclasses.dataclass(frozen=True)
class RoomsConfig(_Validated):
    """Room limits."""

    _key_prefix: ClassVar[str] = "rooms"

    max_participants: int = 16
    empty_timeout_seconds: float = 30.0
    max_publications_per_participant: int = 4
    lobby_timeout_seconds: float = 300.0
    #: Rooms joined by id (``join {room, token}``), each join with a signed room token.
    #: Off: only meeting links can be joined.
    adhoc: bool = False
    lobby_max_waiting: int = 50
    lobby_max_per_address: int = 10
    #: Last-N: camera video only from the N most recent speakers, plus pins and screen
    #: sharers (0: from everyone)
    last_n: int = 0

    def _validate(self) -> None:
        self._range("last_n", self.last_n, 0, 1000, "between 0 (off) and 1000")
        self._range(
            "lobby_timeout_seconds", self.lobby_timeout_seconds, 1, 86400, "between 1 and 86400"
        )
        self._range("lobby_max_waiting", self.lobby_max_waiting, 1, 1000, "between 1 and 1000")
        self._range(
            "lobby_max_per_address", self.lobby_max_per_address, 0, 1000, "between 0 and 1000"
        )
        self._range("max_participants", self.max_participants, 1, 1000, "between 1 and 1000")
        self._range("empty_timeout_seconds", self.empty_timeout_seconds, 0, None, ">= 0")
        self._range(
            "max_publications_per_participant",
            self.max_publications_per_participant,
            1,
            16,
            "between 1 and 16",
        )


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
        from .state.redis_conn import RedisTarget, parse_sentinels

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


@dataclasses.dataclass(frozen=True)
class LinkApiConfig(_Validated):
    """The calendar-facing link API under /v1."""

    _key_prefix: ClassVar[str] = "linkapi"

    enabled: bool = True
    token_secret: str = dataclasses.field(default="", metadata={"secret": True})
    join_token_ttl_seconds: float = 600.0
    rate_limit_per_minute: int = 600
    rate_limit_burst: int = 0  # requests at once; 0: rate_limit_per_minute
    max_body_bytes: int = 65536
    webhook_retry_base_seconds: float = 1.0
    webhook_retry_max_seconds: float = 300.0
    webhook_timeout_seconds: float = 10.0
    allow_private_webhook_urls: bool = False

    def _validate(self) -> None:
        if self.token_secret and len(self.token_secret) < 32:
            raise _error(self._key("token_secret"), "must be at least 32 characters")
        self._range(
            "join_token_ttl_seconds", self.join_token_ttl_seconds, 10, 86400, "between 10 and 86400"
        )
        self._range("rate_limit_per_minute", self.rate_limit_per_minute, 1, 1_000_000, ">= 1")
        self._range("rate_limit_burst", self.rate_limit_burst, 0, 1_000_000, "0..1000000")
        self._range("max_body_bytes", self.max_body_bytes, 1024, 10 << 20, "1024..10 MiB")
        self._range(
            "webhook_retry_base_seconds", self.webhook_retry_base_seconds, 0.01, 3600, "> 0"
        )
        self._range("webhook_retry_max_seconds", self.webhook_retry_max_seconds, 0.01, 86400, "> 0")
        self._range("webhook_timeout_seconds", self.webhook_timeout_seconds, 0.1, 300, "0.1..300")


@dataclasses.dataclass(frozen=True)
class LoggingConfig(_Validated):
    """Log level and output format (values are case-insensitive, stored lower-case)."""

    _key_prefix: ClassVar[str] = "logging"

    level: str = "info"
    format: str = "json"

    def _validate(self) -> None:
        self._set("level", self._choice("level", self.level, LOG_LEVELS))
        self._set("format", self._choice("format", self.format, LOG_FORMATS))


@dataclasses.dataclass(frozen=True)
class MetricsConfig(_Validated):
    """Prometheus endpoint."""

    _key_prefix: ClassVar[str] = "metrics"

    enabled: bool = True
    path: str = "/metrics"
    listen: str = ""  # "host:port" of a separate listener; "": the public listener
    bearer_token: str = dataclasses.field(default="", metadata={"secret": True})

    @property
    def listen_address(self) -> tuple[str, int] | None:
        """(host, port) of the separate metrics listener, or None (public listener)."""
        if not self.listen:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)

    def _validate(self) -> None:
        if self.listen:
            host, sep, port = self.listen.rpartition(":")
            if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                raise _error(
                    self._key("listen"),
                    f"expected host:port (IPv6 in brackets) with port 1..65535, "
                    f"got {self.listen!r}",
                )
        if self.bearer_token and len(self.bearer_token) < 16:
            raise _error(self._key("bearer_token"), "must be at least 16 characters")
        if not self.path.startswith("/"):
            raise _error(self._key("path"), f"must start with '/', got {self.path!r}")
        reserved = ("/ws", "/healthz", "/v1", "/j/", "/static")
        if self.path.rstrip("/") in ("", "/ws", "/healthz", "/v1") or self.path.startswith(
            reserved
        ):
            raise _error(self._key("path"), f"{self.path!r} collides with the server's own routes")


@dataclasses.dataclass(frozen=True)
class SignallingConfig(_Validated):
    """WebSocket signalling limits."""

    _key_prefix: ClassVar[str] = "signalling"

    max_message_bytes: int = 65536
    join_timeout_seconds: float = 10.0
    # Abuse limits (docs/protocol.md §1 and §6, docs/operations.md §2)
    messages_per_second: float = 20.0
    message_burst: int = 50
    rate_limited_close_after: int = 50
    max_connections_per_address: int = 32
    max_sdp_mlines: int = 32
    max_sdp_attributes_per_mline: int = 256
    max_concurrent_sdp: int = 4
    max_queued_sdp: int = 16
    publish_burst: int = 5
    publishes_per_minute: float = 12.0
    join_burst_per_address: int = 30
    joins_per_minute_per_address: float = 60.0

    def _validate(self) -> None:
        self._range(
            "max_message_bytes", self.max_message_bytes, 1024, 1048576, "between 1024 and 1048576"
        )
        self._range("messages_per_second", self.messages_per_second, 0.1, 10000, "0.1..10000")
        self._range("message_burst", self.message_burst, 1, 100000, "1..100000")
        self._range("rate_limited_close_after", self.rate_limited_close_after, 1, 100000, ">= 1")
        self._range(
            "max_connections_per_address", self.max_connections_per_address, 0, 100000, ">= 0"
        )
        self._range("max_sdp_mlines", self.max_sdp_mlines, 1, 1024, "between 1 and 1024")
        self._range(
            "max_sdp_attributes_per_mline", self.max_sdp_attributes_per_mline, 8, 4096, "8..4096"
        )
        self._range("max_concurrent_sdp", self.max_concurrent_sdp, 1, 1024, "between 1 and 1024")
        self._range("max_queued_sdp", self.max_queued_sdp, 0, 100000, ">= 0")
        self._range("publish_burst", self.publish_burst, 1, 1000, "between 1 and 1000")
        self._range("publishes_per_minute", self.publishes_per_minute, 0.1, 6000, "0.1..6000")
        self._range(
            "join_burst_per_address", self.join_burst_per_address, 0, 100000, ">= 0 (0: off)"
        )
        self._range(
            "joins_per_minute_per_address",
            self.joins_per_minute_per_address,
            0.1,
            600000,
            "0.1..600000",
        )
        if not self.join_timeout_seconds > 0:
            raise _error(
                self._key("join_timeout_seconds"),
                f"must be greater than 0, got {self.join_timeout_seconds!r}",
            )


@dataclasses.dataclass(frozen=True)
class AccountsConfig(_Validated):
    """Member accounts (sign-in pages, /account) and the OAuth 2.0 authorization server
    for calendar products (docs/linkapi.md, "Integrating as a calendar product")."""

    _key_prefix: ClassVar[str] = "accounts"

    enabled: bool = True
    session_ttl_seconds: float = 604800.0  # a signed-in browser, 7 days
    password_link_ttl_seconds: float = 259200.0  # the one-time set-password link, 3 days
    min_password_length: int = 10
    signin_failures_per_account: int = 5  # then refused for the rest of the window
    signin_failures_per_address: int = 20
    signin_window_seconds: float = 900.0
    code_ttl_seconds: float = 60.0  # authorization codes
    access_token_ttl_seconds: float = 3600.0
    refresh_token_ttl_seconds: float = 2592000.0  # 30 days

    def _validate(self) -> None:
        self._range("session_ttl_seconds", self.session_ttl_seconds, 60, 31_536_000, "60..1 year")
        self._range(
            "password_link_ttl_seconds", self.password_link_ttl_seconds, 60, 2_592_000, "60 s..30 d"
        )
        self._range("min_password_length", self.min_password_length, 8, 128, "8..128")
        self._range(
            "signin_failures_per_account", self.signin_failures_per_account, 1, 1000, "1..1000"
        )
        self._range(
            "signin_failures_per_address", self.signin_failures_per_address, 1, 100000, "1..100000"
        )
        self._range("signin_window_seconds", self.signin_window_seconds, 1, 86400, "1..86400")
        self._range("code_ttl_seconds", self.code_ttl_seconds, 1, 600, "1..600 (RFC 6749 4.1.2)")
        self._range(
            "access_token_ttl_seconds", self.access_token_ttl_seconds, 10, 86400, "10..86400"
        )
        self._range(
            "refresh_token_ttl_seconds", self.refresh_token_ttl_seconds, 60, 31_536_000, "60 s..1 y"
        )


@dataclasses.dataclass(frozen=True)
class RecordingConfig(_Validated):
    """Recording meetings without transcoding (mediaserver/recording)."""

    _key_prefix: ClassVar[str] = "recording"

    directory: str = ""  # empty: {state.data_dir}/recordings
    #: Who may record rooms that have no link setting (ad-hoc rooms): off|host|always.
    default_policy: str = "off"
    #: Frames waiting for a recording's writer thread; beyond it frames are dropped.
    queue_frames: int = 2000
    #: Finished recordings older than this many days are deleted; 0 keeps them.
    retention_days: float = 0.0

    def _validate(self) -> None:
        if self.default_policy not in RECORDING_POLICIES:
            raise _error(
                self._key("default_policy"), f"must be one of {', '.join(RECORDING_POLICIES)}"
            )
        self._range("queue_frames", self.queue_frames, 16, 1_000_000, "between 16 and 1000000")
        self._range("retention_days", self.retention_days, 0, 36500, "between 0 and 36500")


@dataclasses.dataclass(frozen=True)
class Config(_Validated):
    """The whole configuration; one attribute per TOML section."""

    server: ServerConfig = dataclasses.field(default_factory=ServerConfig)
    rtc: RtcConfig = dataclasses.field(default_factory=RtcConfig)
    turn: TurnConfig = dataclasses.field(default_factory=TurnConfig)
    rooms: RoomsConfig = dataclasses.field(default_factory=RoomsConfig)
    state: StateConfig = dataclasses.field(default_factory=StateConfig)
    logging: LoggingConfig = dataclasses.field(default_factory=LoggingConfig)
    metrics: MetricsConfig = dataclasses.field(default_factory=MetricsConfig)
    signalling: SignallingConfig = dataclasses.field(default_factory=SignallingConfig)
    linkapi: LinkApiConfig = dataclasses.field(default_factory=LinkApiConfig)
    cluster: ClusterConfig = dataclasses.field(default_factory=ClusterConfig)
    accounts: AccountsConfig = dataclasses.field(default_factory=AccountsConfig)
    recording: RecordingConfig = dataclasses.field(default_factory=RecordingConfig)

    @property
    def recording_directory(self) -> str:
        return self.recording.directory or os.path.join(self.state.data_dir, "recordings")


def _section_fields(section: str) -> dict[str, dataclasses.Field[Any]] | None:
    for fld in dataclasses.fields(Config):
        section_type = fld.type
        if fld.name == section and isinstance(section_type, type):
            return {f.name: f for f in dataclasses.fields(section_type)}
    return None


def _read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {name}") from None
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends with "(at line N, column M)".
        raise ConfigError(f"{name}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name}: invalid TOML: not UTF-8 ({exc.reason})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {name}: {exc.strerror or exc}") from None


def _parse_env_value(raw: str, tp: object, key: str, *, secret: bool) -> object:
    """Turn an environment string into a raw value for :func:`_check`."""
    if tp is str:
        return raw
    text = raw.strip()
    if tp is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise _error(
            key, f"expected boolean (true/false/1/0/yes/no), got {_describe(raw, secret=secret)}"
        )
    if tp is int:
        if _INT_RE.fullmatch(text):
            return int(text)
        raise _error(key, f"expected integer, got {_describe(raw, secret=secret)}")
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise _error(key, f"expected number, got {_describe(raw, secret=secret)}") from None
    if get_origin(tp) is tuple:
        item_tp = get_args(tp)[0]
        if text.startswith("["):
            try:
                value: object = json.loads(text)
            except json.JSONDecodeError as exc:
                raise _error(key, f"invalid JSON array: {exc}") from None
            return value
        if item_tp is str:
            return [part.strip() for part in text.split(",") if part.strip()]
        if not text:
            return []
        # Not echoed: it may contain credentials.
        raise _error(key, "expected a JSON array of objects (value starting with '[')")
    raise TypeError(f"unsupported config field type {tp!r}")  # pragma: no cover


def _apply_env(env: Mapping[str, str], raw: dict[str, Any], origins: dict[str, str]) -> None:
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name in (ENV_CONFIG_PATH, ENV_PURE_PYTHON):
            continue
        where = f"from environment variable {name}"
        section_token, sep, key_token = name[len(ENV_PREFIX) :].partition("_")
        section, key = section_token.lower(), key_token.lower()
        if not section or not sep or not key:
            raise ConfigError(
                f"environment variable {name} does not name a setting "
                f"(expected {ENV_PREFIX}<SECTION>_<KEY>)"
            )
        fields = _section_fields(section)
        if fields is None:
            raise ConfigError(f"unknown section {section!r} ({where})", key=section)
        dotted = f"{section}.{key}"
        fld = fields.get(key)
        if fld is None:
            raise ConfigError(f"unknown key '{dotted}' ({where})", key=dotted)
        secret = bool(fld.metadata.get("secret", False))
        try:
            value = _parse_env_value(env[name], fld.type, dotted, secret=secret)
        except ConfigError as exc:
            raise ConfigError(f"{exc.message} ({where})", key=exc.key) from None
        table = raw.setdefault(section, {})
        table[key] = value
        origins[dotted] = where


def _origin(key: str | None, origins: Mapping[str, str]) -> str | None:
    if key is None:
        return None
    if key in origins:
        return origins[key]
    # "rtc.ice_servers[0].urls" came from wherever "rtc.ice_servers" came from.
    best: str | None = None
    for candidate in origins:
        if "." in candidate and key.startswith((candidate + ".", candidate + "[")):
            if best is None or len(candidate) > len(best):
                best = candidate
    return origins[best] if best is not None else None


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Load configuration: defaults, then the TOML file at ``path``, then ``env``.

    ``env`` defaults to ``os.environ``. Raises :class:`ConfigError` on any problem.
    """
    if env is None:
        env = os.environ
    raw: dict[str, Any] = {}
    origins: dict[str, str] = {}
    if path is not None:
        raw = _read_toml(path)
        where = f"in {os.fspath(path)}"
        for section, table in raw.items():
            origins[section] = where
            if _section_fields(section) is None:
                raise ConfigError(f"unknown section {section!r} ({where})", key=section)
            if not isinstance(table, dict):
                raise ConfigError(
                    f"{section}: expected table, got {_describe(table)} ({where})", key=section
                )
            for key in table:
                origins[f"{section}.{key}"] = where
    _apply_env(env, raw, origins)
    try:
        return _build(Config, raw, "")
    except ConfigError as exc:
        origin = _origin(exc.key, origins)
        if origin is None:
            raise
        raise ConfigError(f"{exc.message} ({origin})", key=exc.key) from None


def _plain(obj: object) -> object:
    if isinstance(obj, _Validated):
        return _dataclass_dict(obj)
    if isinstance(obj, list | tuple):
        return [_plain(item) for item in obj]
    return obj


def _dataclass_dict(obj: _Validated) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for fld in dataclasses.fields(obj):
        value = getattr(obj, fld.name)
        if fld.metadata.get("secret", False) and value:
            out[fld.name] = SECRET_MASK
        else:
            out[fld.name] = _plain(value)
    return out


def config_to_dict(config: Config) -> dict[str, Any]:
    """JSON-serialisable dict of ``config`` (same shape as the TOML file).

    Secrets (ICE server credentials) are replaced by ``"***"`` when non-empty.
    """
    return _dataclass_dict(config)
