"""The client's address behind trusted reverse proxies (``server.trusted_proxies``).

Per-address limits (signalling connections per address, guests waiting per address,
sign-in throttling per address) key on the client's address. Behind a reverse proxy or
load balancer every request comes from the proxy, so those limits would count everyone
as one client. With ``server.trusted_proxies`` set (addresses or CIDR networks), a
request whose peer is trusted takes its client address from ``X-Forwarded-For``: the
right-most entry that is not itself a trusted proxy (nginx's ``real_ip_recursive``),
so a client cannot choose its address by sending the header itself. A malformed entry
ends the walk at the last good address. With the setting empty (the default) the
header is ignored.

:func:`middleware` sets ``request.remote`` (aiohttp's ``request.clone(remote=...)``) so
that every user of ``request.remote`` sees the client. aiohttp-remotes' ``XForwarded*``
middlewares were considered: they require a fixed hop count per request and also
rewrite scheme and host, where we need only the address with a variable proxy chain.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware

__all__ = ["TrustedProxies", "middleware", "parse_networks"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: At most this many X-Forwarded-For entries are looked at (from the right).
MAX_HOPS = 16


def parse_networks(items: Sequence[str]) -> tuple[Network, ...]:
    """``"10.0.0.0/8"``, ``"127.0.0.1"``, ``"::1"`` → networks; ValueError names the bad one."""
    out = []
    for item in items:
        try:
            out.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or network: {item!r}") from None
    return tuple(out)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class TrustedProxies:
    def __init__(self, networks: Sequence[str]) -> None:
        self.networks = parse_networks(networks)

    def trusts(self, address: str | None) -> bool:
        ip = _ip(address or "")
        return ip is not None and any(ip in net for net in self.networks)

    def client(self, peer: str | None, forwarded_for: Sequence[str]) -> str:
        """The client address for a request from ``peer`` with these header values."""
        peer = peer or ""
        if not self.networks or not self.trusts(peer):
            return peer
        entries = [e for value in forwarded_for for e in value.split(",")][-MAX_HOPS:]
        client = peer
        for entry in reversed(entries):
            ip = _ip(entry)
            if ip is None:
                break
            client = str(ip)
            if not any(ip in net for net in self.networks):
                break
        return client


def middleware(proxies: TrustedProxies) -> Middleware:
    """Rewrites ``request.remote`` to the client behind trusted proxies."""

    @web.middleware
    async def client_address(request: web.Request, handler: Handler) -> web.StreamResponse:
        forwarded = request.headers.getall("X-Forwarded-For", [])
        if forwarded:
            client = proxies.client(request.remote, forwarded)
            if client != request.remote:
                request = request.clone(remote=client)
        return await handler(request)

    return client_address
