"""The webhook endpoints and the outbox of ``RedisStore``: endpoints, the events
queued for them (one queue per endpoint and ordering key, its head in the due set),
and the delivery attempts. The Lua side of the outbox append is ``outbox_check`` and
``outbox_write`` in ``redis_scripts``' prelude; ``outbox_args`` is its Python side.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from redis.exceptions import WatchError

from . import redis_manage
from .models import DeliveryAttempt, OutboxEvent, WebhookEndpoint, to_dict
from .redis_base import RedisStoreBase, dumps, load, score
from .redis_keys import (
    KEY_ATTEMPTS,
    KEY_DUE,
    KEY_OUTBOX,
    KEY_QUEUE,
    KEY_TENANT_OUTBOX,
    KEY_TENANT_PENDING,
    KEY_TENANT_WEBHOOKS,
    KEY_WEBHOOK,
)
from .store import ConflictError

__all__ = ["RedisWebhookOutbox", "outbox_args"]


def outbox_args(events: Sequence[OutboxEvent]) -> list[str]:
    """The script arguments for appending ``events`` (see ``outbox_check`` in the Lua
    prelude): the items' JSON, then each event's JSON without ``seq``, written here so
    that its numbers round-trip exactly (Lua only splices the seq in)."""
    items = []
    bodies = []
    for event in events:
        items.append(
            {
                "id": event.id,
                "tenant_id": event.tenant_id,
                "endpoint_id": event.endpoint_id,
                "ordering_key": event.ordering_key,
                "next": score(event.next_attempt_at),
                "delivered": event.delivered_at is not None,
            }
        )
        body = to_dict(event)
        del body["seq"]
        bodies.append(json.dumps(body, separators=(",", ":"), sort_keys=True))
    return [json.dumps(items), *bodies]


class RedisWebhookOutbox(RedisStoreBase):
    """Webhook endpoints and the outbox, on the plumbing of ``RedisStoreBase``."""

    # --- webhooks -----------------------------------------------------------------
    async def add_webhook_endpoint(self, endpoint: WebhookEndpoint) -> None:
        await self._insert(
            self._key(KEY_WEBHOOK, id=endpoint.id),
            endpoint.id,
            dumps(endpoint),
            index=[
                (self._key(KEY_TENANT_WEBHOOKS, tenant_id=endpoint.tenant_id), endpoint.created_at)
            ],
        )

    async def get_webhook_endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        return await self._get(WebhookEndpoint, self._key(KEY_WEBHOOK, id=endpoint_id))

    async def list_webhook_endpoints(self, tenant_id: str) -> list[WebhookEndpoint]:
        return await self._list(
            WebhookEndpoint,
            self._key(KEY_TENANT_WEBHOOKS, tenant_id=tenant_id),
            KEY_WEBHOOK,
            newest_first=False,
            limit=-1,
        )

    async def disable_webhook_endpoint(self, endpoint_id: str, at: float) -> bool:
        """False if there is no such endpoint (disabling twice keeps the first time)."""
        return await self._set_once(
            self._key(KEY_WEBHOOK, id=endpoint_id), WebhookEndpoint, "disabled_at", at
        )

    async def update_webhook_endpoint(
        self, endpoint_id: str, changes: Mapping[str, Any]
    ) -> WebhookEndpoint | None:
        if {"id", "tenant_id"} & set(changes):
            raise ValueError("a webhook endpoint's id and tenant_id cannot change")
        return await redis_manage.replace_record(
            self._r, self._key(KEY_WEBHOOK, id=endpoint_id), WebhookEndpoint, changes
        )

    # --- outbox -------------------------------------------------------------------
    async def enqueue_events(self, events: list[OutboxEvent]) -> list[OutboxEvent]:
        """Append to the outbox in order, assigning increasing ``seq``; returns them.
        A duplicate event id raises ConflictError and nothing is enqueued."""
        if not events:
            return []
        result = await self._script("enqueue", *outbox_args(events))
        if result[0] == "conflict":
            raise ConflictError(result[1])
        return [
            dataclasses.replace(event, seq=int(seq))
            for event, seq in zip(events, result[1:], strict=True)
        ]

    async def due_events(self, now: float, limit: int = 100) -> list[OutboxEvent]:
        if limit <= 0:
            return []
        rows = await self._script("due", score(now), str(limit))
        events = [load(OutboxEvent, row) for row in rows]
        events.sort(key=lambda e: (e.next_attempt_at, e.seq))
        return events

    async def record_attempt(
        self, attempt: DeliveryAttempt, delivered: bool, next_attempt_at: float, error: str | None
    ) -> None:
        """Log an attempt; mark delivered, or reschedule at ``next_attempt_at``. The
        event's ``attempts`` grows by one; an already delivered event stays delivered.
        Raises ConflictError if there is no such outbox event."""
        key = self._key(KEY_OUTBOX, id=attempt.outbox_id)
        due = self._key(KEY_DUE)
        async with self._r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        raise ConflictError(f"no outbox event {attempt.outbox_id}")
                    event = load(OutboxEvent, str(raw))
                    queue = self._key(
                        KEY_QUEUE, endpoint_id=event.endpoint_id, ordering_key=event.ordering_key
                    )
                    pending = self._key(KEY_TENANT_PENDING, tenant_id=event.tenant_id)
                    event = dataclasses.replace(event, attempts=event.attempts + 1)
                    next_head: OutboxEvent | None = None
                    was_pending = event.delivered_at is None
                    if was_pending and delivered:
                        event = dataclasses.replace(
                            event, delivered_at=attempt.at, last_error=error
                        )
                        await pipe.watch(queue)
                        heads = await pipe.zrange(queue, 0, 1)
                        if len(heads) == 2 and heads[0] == event.id:
                            head_key = self._key(KEY_OUTBOX, id=str(heads[1]))
                            await pipe.watch(head_key)
                            head_raw = await pipe.get(head_key)
                            if head_raw is not None:
                                next_head = load(OutboxEvent, str(head_raw))
                    elif was_pending:
                        event = dataclasses.replace(
                            event, next_attempt_at=next_attempt_at, last_error=error
                        )
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, dumps(event))
                    pipe.rpush(self._key(KEY_ATTEMPTS, outbox_id=attempt.outbox_id), dumps(attempt))
                    if was_pending and delivered:
                        pipe.zrem(queue, event.id)
                        pipe.zrem(pending, event.id)
                        pipe.zrem(due, event.id)
                        if next_head is not None:
                            pipe.zadd(due, {next_head.id: next_head.next_attempt_at})
                    elif was_pending:
                        # Only a queue head is in the due set; XX leaves the others out.
                        pipe.zadd(due, {event.id: event.next_attempt_at}, xx=True)
                    await pipe.execute()
                    return
                except WatchError:
                    continue

    async def list_outbox(
        self, tenant_id: str, *, limit: int = 100, undelivered_only: bool = False
    ) -> list[OutboxEvent]:
        if limit <= 0:
            return []
        template = KEY_TENANT_PENDING if undelivered_only else KEY_TENANT_OUTBOX
        return await self._list(
            OutboxEvent,
            self._key(template, tenant_id=tenant_id),
            KEY_OUTBOX,
            newest_first=True,
            limit=limit,
        )

    async def list_attempts(self, outbox_id: str) -> list[DeliveryAttempt]:
        rows = await self._r.lrange(self._key(KEY_ATTEMPTS, outbox_id=outbox_id), 0, -1)
        return [load(DeliveryAttempt, str(row)) for row in rows]
