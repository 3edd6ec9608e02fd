"""The process's own sections: the HTTP/WebSocket listener ([server]), logging and the
Prometheus endpoint ([metrics])."""

import dataclasses
import ipaddress
from typing import ClassVar
from urllib.parse import urlsplit

from .base import _error, _Validated

LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error")
LOG_FORMATS: tuple[str, ...] = ("json", "console")


@dataclasses.dataclass(frozen=True)
class ServerConfig(_Validated):
    """HTTP/WebSocket listener."""

    _key_prefix: ClassVar[str] = "server"

    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""
    shutdown_grace_seconds: float = 10.0
    #: Reverse proxies whose X-Forwarded-For is believed (mediaserver/client_address.py).
    trusted_proxies: tuple[str, ...] = ()

    def _validate(self) -> None:
        if not self.host.strip():
            raise _error(self._key("host"), "must not be empty")
        for item in self.trusted_proxies:
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                raise _error(
                    self._key("trusted_proxies"), f"not an IP address or network: {item!r}"
                ) from None
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
