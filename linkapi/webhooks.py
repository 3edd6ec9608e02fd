"""Webhook delivery: signing, SSRF checks and the outbox dispatcher.

Every event is written to the durable outbox first (``LinkService.emit``); the
dispatcher delivers due events, records each attempt and retries failures with
exponential backoff, forever: a receiver that is down loses nothing. Events with the
same ordering key (the link, i.e. the room) reach an endpoint in order: the store only
offers the oldest undelivered event of each (endpoint, ordering key) queue.

Receivers verify ``Mediaserver-Signature: t=<unix seconds>,v1=<hex>`` where ``v1`` is
HMAC-SHA256(secret, f"{t}.{raw body}").
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import hmac
import ipaddress
import json
import math
import random
import re
import socket
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import aiohttp
import yarl
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver

from mediaserver.state import Store
from mediaserver.state.models import DeliveryAttempt, OutboxEvent, WebhookEndpoint
from mediaserver.telemetry import get_logger

__all__ = [
    "CheckedResolver",
    "ForbiddenAddress",
    "WebhookDispatcher",
    "backoff_seconds",
    "check_webhook_url",
    "check_webhook_url_resolves",
    "forbidden_address",
    "sign",
    "verify_signature",
    "webhook_url_problem",
]

SIGNATURE_HEADER = "Mediaserver-Signature"
TOLERANCE_SECONDS = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> bool:
    """What a receiver does: constant-time check of the signature and its age."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        ts = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance:
        return False
    expected = sign(secret, ts, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def backoff_seconds(attempts: int, base: float, cap: float) -> float:
    """Delay before the next try after ``attempts`` failures (full jitter above half)."""
    delay: float = min(cap, base * (2 ** max(0, attempts - 1)))
    return delay * (0.5 + random.random() / 2)


_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+", re.ASCII | re.IGNORECASE)
_HOST_NAME = re.compile(r"[a-z0-9_.-]+", re.ASCII)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
RESOLVE_TIMEOUT_SECONDS = 2.0
_NOT_CANONICAL = "an IP address must be written in canonical form (e.g. 192.0.2.10, [2001:db8::1])"


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address leads to (mapped, 6to4, Teredo, NAT64)."""
    out = [a for a in (ip.ipv4_mapped, ip.sixtofour) if a is not None]
    if ip.teredo is not None:
        out.extend(ip.teredo)
    if ip in _NAT64:
        out.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return out


def forbidden_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True unless ``ip`` (and every IPv4 address it embeds) is a global unicast
    address: loopback, private, link-local, CGNAT (100.64/10), multicast, reserved,
    unspecified, documentation and the like are forbidden webhook targets."""
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        candidates.extend(_embedded_ipv4(ip))
    return any(
        not a.is_global
        or a.is_multicast
        or a.is_reserved
        or a.is_unspecified
        or a.is_loopback
        or a.is_link_local
        or a.is_private
        for a in candidates
    )


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_webhook_url(url: str, allow_private: bool) -> str | None:
    """Why ``url`` is not acceptable as a webhook URL, or None (no network access).

    The host checked is the one the HTTP client will use (yarl's IDNA-normalised host),
    and IP addresses must be written canonically (no ``127.1``, ``0x7f000001``,
    ``0177.0.0.1`` or ``①②⑦.0.0.1``). Unless ``allow_private``, ``localhost`` names and
    forbidden literal addresses are refused; names are resolved by
    ``check_webhook_url_resolves`` and, what counts, at every delivery."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
        target = yarl.URL(url)
        host = target.raw_host
    except ValueError:  # also UnicodeError (IDNA)
        return "not a valid URL"
    if parts.scheme not in ("http", "https") or not parts.hostname or not host:
        return "must be an absolute http(s) URL"
    if "@" in parts.netloc:
        return "must not contain credentials"
    ip = _ip(host)
    if "%" in host:
        return "scoped IPv6 addresses are not allowed"
    if ip is None:
        if not _HOST_NAME.fullmatch(host):
            return "not a valid host name"
        if _NUMERIC_LABEL.fullmatch(host.rstrip(".").rsplit(".", 1)[-1]):
            return _NOT_CANONICAL
    elif ip.version == 4 and parts.hostname != host:
        return _NOT_CANONICAL
    if allow_private:
        return None
    name = host.rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return "loopback addresses are not allowed"
    if ip is not None and forbidden_address(ip):
        return "private, loopback, link-local and other non-global addresses are not allowed"
    return None


async def check_webhook_url_resolves(url: str) -> str | None:
    """Early feedback at registration: a name that resolves now to a forbidden address
    is refused. A name that does not resolve is accepted (deliveries check again)."""
    host = yarl.URL(url).raw_host
    if host is None or _ip(host) is not None:
        return None
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
            await CheckedResolver().resolve(host, 0, socket.AF_UNSPEC)
    except ForbiddenAddress as exc:
        return str(exc.strerror)
    except (OSError, TimeoutError):
        return None
    return None


async def webhook_url_problem(url: str, allow_private: bool) -> str | None:
    """Why ``url`` cannot be registered (both checks above), or None."""
    problem = check_webhook_url(url, allow_private)
    if problem is None and not allow_private:
        problem = await check_webhook_url_resolves(url)
    return problem


class ForbiddenAddress(OSError):
    """A webhook host resolved to (or is) an address that must not be contacted."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EACCES, message)  # strerror: what aiohttp reports


class CheckedResolver(ThreadedResolver):
    """aiohttp's getaddrinfo resolver, refusing a name if ANY of its addresses is
    forbidden. aiohttp connects only to the addresses a resolver returns, so the
    address checked is the address connected to (no second lookup); TLS SNI and the
    Host header keep the name."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await super().resolve(host, port, family)
        for result in results:
            ip = _ip(result["host"].split("%", 1)[0])
            if ip is None or forbidden_address(ip):
                raise ForbiddenAddress(f"{host} resolves to {result['host']}, a forbidden address")
        return results


def delivery_refusal(url: str) -> str | None:
    """Why a delivery to ``url`` must not be attempted, for what the resolver does not
    see: aiohttp connects to an IP literal (also one that IDNA made) without resolving."""
    host = yarl.URL(url).raw_host or ""
    ip = _ip(host)
    if ip is not None and forbidden_address(ip):
        return f"{host} is a forbidden address"
    return None


PARKED_PREFIX = "parked: "


class WebhookDispatcher:
    def __init__(
        self,
        store: Store,
        *,
        timeout: float,
        retry_base: float,
        retry_max: float,
        poll_interval: float = 1.0,
        idle_poll_interval: float = 10.0,
        allow_private: bool = False,
    ) -> None:
        self.store = store
        self.timeout = timeout
        self.retry_base = retry_base
        self.retry_max = retry_max
        #: between passes in a cluster (other nodes' events wake no one here)
        self.poll_interval = poll_interval
        #: between passes on a single node, where every event enqueued wakes the
        #: dispatcher and it knows when its own retries are due: only a safety net (and
        #: the bound on retries a previous process scheduled)
        self.idle_poll_interval = idle_poll_interval
        #: the earliest retry this dispatcher scheduled (time.time()), inf: none
        self._next_retry = math.inf
        #: linkapi.allow_private_webhook_urls: no address checks at delivery
        self.allow_private = allow_private
        self.log = get_logger(component="webhooks")
        #: In a cluster only one node delivers (it holds a renewed lock): see app.py.
        self.should_run: Callable[[], Awaitable[bool]] | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._session: aiohttp.ClientSession | None = None
        self.delivered = 0
        self.failed_attempts = 0
        self.parked = 0

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        # Every connection goes to an address the resolver checked (IP literals, which
        # aiohttp does not resolve, are checked in _deliver).
        connector = aiohttp.TCPConnector(
            resolver=ThreadedResolver() if self.allow_private else CheckedResolver()
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            headers={"User-Agent": "mediaserver-webhooks/1"},
        )
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        self._stopping = True  # no further pass, even if a cancellation got lost
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        while not self._stopping:
            # clear before the pass: wake-ups during it (a delivery moved a queue on,
            # a new event) start the next pass at once
            self._wake.clear()
            if self._next_retry <= time.time():
                self._next_retry = math.inf  # this pass takes them (or schedules them again)
            try:
                if self.should_run is None or await self.should_run():
                    await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("webhook dispatch failed")
            # not asyncio.wait_for: in 3.11 it swallows a cancellation that arrives as
            # the wake-up does (CPython gh-86296), and stop() then waited forever
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._pause()):
                    await self._wake.wait()

    def _pause(self) -> float:
        """Seconds to the next pass unless woken: the next retry due, else the poll."""
        poll = self.poll_interval if self.should_run is not None else self.idle_poll_interval
        return max(0.0, min(poll, self._next_retry - time.time()))

    async def run_once(self) -> int:
        """Deliver every event due now (heads of their queues), concurrently; a failure
        of one entry never stops the others."""
        due = await self.store.due_events(time.time(), limit=100)
        if due:
            await asyncio.gather(*(self._deliver_isolated(ev) for ev in due))
        return len(due)

    async def _endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        return await self.store.get_webhook_endpoint(endpoint_id)

    async def _deliver_isolated(self, event: OutboxEvent) -> None:
        try:
            await self._deliver(event)
        except asyncio.CancelledError:
            raise
        except Exception:  # the store failed (transient): the entry is tried again
            self.log.exception("webhook delivery failed", outbox_id=event.id)

    async def _close_out(
        self, event: OutboxEvent, attempt_no: int, at: float, error: str, last_error: str
    ) -> None:
        """Record one attempt that sent nothing and take the entry out of its queue."""
        await self.store.record_attempt(
            DeliveryAttempt(event.id, attempt_no, at, None, error, 0.0), True, at, last_error
        )

    def _request(
        self, event: OutboxEvent, ep: WebhookEndpoint, attempt_no: int, ts: int
    ) -> tuple[bytes, dict[str, str]]:
        """Body and headers of an attempt; raises if the entry can never be sent."""
        problem = check_webhook_url(ep.url, self.allow_private)
        if problem is not None:
            raise ValueError(f"webhook URL {problem}")
        body = json.dumps(event.payload, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(ep.secret, ts, body),
            "Mediaserver-Event-Id": event.event_id,
            "Mediaserver-Event-Type": event.type,
            "Mediaserver-Delivery-Attempt": str(attempt_no),
        }
        return body, headers

    async def _deliver(self, event: OutboxEvent) -> None:
        assert self._session is not None
        ep = await self._endpoint(event.endpoint_id)
        attempt_no = event.attempts + 1
        started = time.time()
        if ep is None or ep.disabled_at is not None:
            # The tenant removed the endpoint: close the event out so its queue moves on.
            await self._close_out(
                event, attempt_no, started, "endpoint disabled", "endpoint disabled: not sent"
            )
            return
        try:
            body, headers = self._request(event, ep, attempt_no, int(started))
        except Exception as exc:
            # A poison entry (it can never be sent): park it with the reason, so that
            # it neither blocks its queue nor fails on every pass.
            reason = f"{type(exc).__name__}: {exc}".encode("ascii", "backslashreplace")
            parked = PARKED_PREFIX + reason.decode()[:300]
            await self._close_out(event, attempt_no, started, parked, parked)
            self.parked += 1
            self.log.warning(
                "webhook entry parked", endpoint=ep.id, outbox_id=event.id, error=parked
            )
            return
        status: int | None = None
        error: str | None = None
        refusal = None if self.allow_private else delivery_refusal(ep.url)
        try:
            if refusal is not None:
                raise ForbiddenAddress(refusal)
            async with self._session.post(
                ep.url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                status = resp.status
                await resp.read()
                if not 200 <= status < 300:
                    error = f"HTTP {status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        except Exception as exc:  # anything else: a failed attempt, retried with backoff
            error = f"{type(exc).__name__}: {exc}"[:300]
        delivered = error is None
        duration = (time.time() - started) * 1000
        next_at = time.time() + backoff_seconds(attempt_no, self.retry_base, self.retry_max)
        await self.store.record_attempt(
            DeliveryAttempt(
                outbox_id=event.id,
                attempt=attempt_no,
                at=started,
                status=status,
                error=error,
                duration_ms=round(duration, 1),
            ),
            delivered,
            next_at,
            error,
        )
        if delivered:
            self.delivered += 1
            # the next event of this queue is due now
            self._wake.set()
        else:
            self.failed_attempts += 1
            self._next_retry = min(self._next_retry, next_at)
            self.log.info(
                "webhook delivery failed",
                endpoint=ep.id,
                event_id=event.event_id,
                attempt=attempt_no,
                error=error,
            )
