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
import hashlib
import hmac
import ipaddress
import json
import random
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import aiohttp

from mediaserver.state import Store
from mediaserver.state.models import DeliveryAttempt, OutboxEvent, WebhookEndpoint
from mediaserver.telemetry import get_logger

__all__ = [
    "WebhookDispatcher",
    "backoff_seconds",
    "check_webhook_url",
    "sign",
    "verify_signature",
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


def check_webhook_url(url: str, allow_private: bool) -> str | None:
    """Why ``url`` is not acceptable, or None. Literal private addresses are refused
    unless allowed (names are not resolved here: see docs/linkapi.md)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an absolute http(s) URL"
    if parts.username or parts.password:
        return "must not contain credentials"
    if allow_private:
        return None
    host = parts.hostname
    if host == "localhost" or host.endswith(".localhost"):
        return "loopback addresses are not allowed"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved:
        return "private, loopback and link-local addresses are not allowed"
    return None


class WebhookDispatcher:
    def __init__(
        self,
        store: Store,
        *,
        timeout: float,
        retry_base: float,
        retry_max: float,
        poll_interval: float = 1.0,
    ) -> None:
        self.store = store
        self.timeout = timeout
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.poll_interval = poll_interval
        self.log = get_logger(component="webhooks")
        #: In a cluster only one node delivers (it holds a renewed lock): see app.py.
        self.should_run: Callable[[], Awaitable[bool]] | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self.delivered = 0
        self.failed_attempts = 0

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            headers={"User-Agent": "mediaserver-webhooks/1"},
        )
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        while True:
            # clear before the pass: wake-ups during it (a delivery moved a queue on,
            # a new event) start the next pass at once
            self._wake.clear()
            try:
                if self.should_run is None or await self.should_run():
                    await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("webhook dispatch failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)

    async def run_once(self) -> int:
        """Deliver every event due now (heads of their queues), concurrently."""
        due = await self.store.due_events(time.time(), limit=100)
        if due:
            await asyncio.gather(*(self._deliver(ev) for ev in due))
        return len(due)

    async def _endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        return await self.store.get_webhook_endpoint(endpoint_id)

    async def _deliver(self, event: OutboxEvent) -> None:
        assert self._session is not None
        ep = await self._endpoint(event.endpoint_id)
        attempt_no = event.attempts + 1
        started = time.time()
        if ep is None or ep.disabled_at is not None:
            # The tenant removed the endpoint: close the event out so its queue moves on.
            await self.store.record_attempt(
                DeliveryAttempt(event.id, attempt_no, started, None, "endpoint disabled", 0.0),
                True,
                started,
                "endpoint disabled: not sent",
            )
            return
        body = json.dumps(event.payload, separators=(",", ":")).encode()
        ts = int(started)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(ep.secret, ts, body),
            "Mediaserver-Event-Id": event.event_id,
            "Mediaserver-Event-Type": event.type,
            "Mediaserver-Delivery-Attempt": str(attempt_no),
        }
        status: int | None = None
        error: str | None = None
        try:
            async with self._session.post(
                ep.url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                status = resp.status
                await resp.read()
                if not 200 <= status < 300:
                    error = f"HTTP {status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
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
            self.log.info(
                "webhook delivery failed",
                endpoint=ep.id,
                event_id=event.event_id,
                attempt=attempt_no,
                error=error,
            )
