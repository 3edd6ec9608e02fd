"""Webhook endpoints and the events for them (a part of ``LinkService``): adding and
disabling endpoints, and the outbox entries of an event, one per endpoint that wants
it (the dispatcher in ``webhooks.py`` delivers them)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from mediaserver.state.models import OutboxEvent, Tenant, WebhookEndpoint

from .openapi import EVENT_TYPES
from .problems import invalid
from .secrets_ import new_id
from .service_core import ServiceCore, not_found
from .views import iso

__all__ = ["EventSink", "WebhookEvents"]

EventSink = Callable[[str, str, str, dict[str, Any]], None]


class WebhookEvents(ServiceCore):
    """Webhook endpoints and the outbox entries of events."""

    async def add_webhook(
        self, tenant: Tenant, body: dict[str, Any]
    ) -> tuple[WebhookEndpoint, str]:
        from .webhooks import webhook_url_problem

        allow_private = self.config.linkapi.allow_private_webhook_urls
        problem = await webhook_url_problem(body["url"], allow_private)
        if problem:
            raise invalid("url", problem)
        secret = body.get("secret") or f"whsec_{secrets.token_urlsafe(32)}"
        endpoint = WebhookEndpoint(
            id=new_id("wh"),
            tenant_id=tenant.id,
            url=body["url"],
            secret=secret,
            events=tuple(body.get("events") or ()),
            created_at=self.clock(),
        )
        await self.store.add_webhook_endpoint(endpoint)
        return endpoint, secret

    async def disable_webhook(self, tenant: Tenant, webhook_id: str) -> WebhookEndpoint:
        ep = await self.store.get_webhook_endpoint(webhook_id)
        if ep is None or ep.tenant_id != tenant.id:
            raise not_found("webhook")
        await self.store.disable_webhook_endpoint(webhook_id, self.clock())
        got = await self.store.get_webhook_endpoint(webhook_id)
        assert got is not None
        return got

    async def emit(
        self, tenant_id: str, etype: str, ordering_key: str, data: dict[str, Any]
    ) -> None:
        """Put an event in the outbox for every active endpoint that wants it."""
        events = await self.events_for(tenant_id, etype, ordering_key, data)
        if events:
            await self.store.enqueue_events(events)
            self.wake_dispatcher()

    async def events_for(
        self, tenant_id: str, etype: str, ordering_key: str, data: dict[str, Any]
    ) -> list[OutboxEvent]:
        """One outbox entry per active endpoint that wants ``etype`` (not stored)."""
        assert etype in EVENT_TYPES, etype
        endpoints = [
            ep
            for ep in await self.store.list_webhook_endpoints(tenant_id)
            if ep.disabled_at is None and (not ep.events or etype in ep.events)
        ]
        return self.outbox_entries(tenant_id, etype, ordering_key, data, endpoints)

    def outbox_entries(
        self,
        tenant_id: str,
        etype: str,
        ordering_key: str,
        data: dict[str, Any],
        endpoints: list[WebhookEndpoint],
    ) -> list[OutboxEvent]:
        """One event (one id, one payload) as an outbox entry per endpoint (not stored)."""
        if not endpoints:
            return []
        now = self.clock()
        event_id = new_id("evt")
        payload = {
            "id": event_id,
            "type": etype,
            "created_at": iso(now),
            "tenant_id": tenant_id,
            "data": data,
        }
        return [
            OutboxEvent(
                id=new_id("ob"),
                event_id=event_id,
                tenant_id=tenant_id,
                endpoint_id=ep.id,
                type=etype,
                ordering_key=ordering_key,
                payload=payload,
                created_at=now,
                next_attempt_at=now,
            )
            for ep in endpoints
        ]
