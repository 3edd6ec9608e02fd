"""The media transport's sections: ICE and media ports ([rtc], with its STUN/TURN
servers) and a TURN server with short-lived credentials ([turn])."""

import dataclasses
import ipaddress
import re
from typing import ClassVar

from .base import ConfigError, _error, _Validated

_ICE_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")
# Same shape as aiortc's STUN_REGEX / TURN_REGEX, so a URL accepted here is one
# aiortc can parse (host without ':' or '?', optional port, optional transport).
_ICE_URL_RE = re.compile(
    r"(?P<scheme>stuns?|turns?):(?P<host>[^?:]+)(?::(?P<port>[0-9]+))?"
    r"(?:\?transport=(?P<transport>.*))?"
)


def _ip_error(key: str, value: str) -> ConfigError | None:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return _error(key, f"not a valid IP address: {value!r}")
    if address.is_unspecified:
        return _error(key, f"must be a specific address, not the unspecified address {value!r}")
    return None


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
