"""The webhook endpoints and the outbox of ``SqliteStore``: endpoints, the events
queued for them (the undelivered events of one endpoint and ordering key, in ``seq``
order) and the delivery attempts. ``enqueue`` is also the link writes' outbox append,
inside their transaction.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from . import sqlite_manage
from .models import DeliveryAttempt, OutboxEvent, WebhookEndpoint
from .sqlite_base import SqliteStoreBase, dumps, load
from .store import ConflictError

__all__ = ["SqliteWebhookOutbox", "enqueue"]


def enqueue(conn: sqlite3.Connection, events: Sequence[OutboxEvent]) -> list[OutboxEvent]:
    """Append ``events`` to the outbox inside the caller's transaction, assigning
    increasing ``seq``; a duplicate id raises ``sqlite3.IntegrityError``."""
    out = []
    for event in events:
        cursor = conn.execute(
            "INSERT INTO outbox (id, tenant_id, endpoint_id, ordering_key, delivered,"
            " next_attempt_at, created_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, '')",
            (
                event.id,
                event.tenant_id,
                event.endpoint_id,
                event.ordering_key,
                int(event.delivered_at is not None),
                event.next_attempt_at,
                event.created_at,
            ),
        )
        seq = cursor.lastrowid
        assert seq is not None
        stored = dataclasses.replace(event, seq=seq)
        conn.execute("UPDATE outbox SET data = ? WHERE seq = ?", (dumps(stored), seq))
        out.append(stored)
    return out


class SqliteWebhookOutbox(SqliteStoreBase):
    """Webhook endpoints and the outbox, on the plumbing of ``SqliteStoreBase``."""

    # --- webhooks -----------------------------------------------------------------
    async def add_webhook_endpoint(self, endpoint: WebhookEndpoint) -> None:
        await self._tx(
            lambda conn: conn.execute(
                "INSERT INTO webhook_endpoints (id, tenant_id, created_at, data)"
                " VALUES (?, ?, ?, ?)",
                (endpoint.id, endpoint.tenant_id, endpoint.created_at, dumps(endpoint)),
            )
        )

    async def get_webhook_endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        return await self._one(
            WebhookEndpoint, "SELECT data FROM webhook_endpoints WHERE id = ?", endpoint_id
        )

    async def list_webhook_endpoints(self, tenant_id: str) -> list[WebhookEndpoint]:
        return await self._many(
            WebhookEndpoint,
            "SELECT data FROM webhook_endpoints WHERE tenant_id = ? ORDER BY created_at, id",
            tenant_id,
        )

    async def disable_webhook_endpoint(self, endpoint_id: str, at: float) -> bool:
        """False if there is no such endpoint (disabling twice keeps the first time)."""

        def run(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT data FROM webhook_endpoints WHERE id = ?", (endpoint_id,)
            ).fetchone()
            if row is None:
                return False
            endpoint = load(WebhookEndpoint, row[0])
            if endpoint.disabled_at is None:
                disabled = dataclasses.replace(endpoint, disabled_at=at)
                conn.execute(
                    "UPDATE webhook_endpoints SET data = ? WHERE id = ?",
                    (dumps(disabled), endpoint_id),
                )
            return True

        return await self._tx(run)

    async def update_webhook_endpoint(
        self, endpoint_id: str, changes: Mapping[str, Any]
    ) -> WebhookEndpoint | None:
        return await self._tx(
            lambda conn: sqlite_manage.update_webhook_endpoint(conn, endpoint_id, changes)
        )

    # --- outbox -------------------------------------------------------------------
    async def enqueue_events(self, events: list[OutboxEvent]) -> list[OutboxEvent]:
        """Append to the outbox in order, assigning increasing ``seq``; returns them.
        A duplicate event id raises ConflictError and nothing is enqueued."""

        return await self._tx(lambda conn: enqueue(conn, events))

    async def due_events(self, now: float, limit: int = 100) -> list[OutboxEvent]:
        return await self._many(
            OutboxEvent,
            "SELECT o.data FROM outbox AS o"
            " WHERE o.delivered = 0 AND o.next_attempt_at <= ?"
            " AND NOT EXISTS (SELECT 1 FROM outbox AS h"
            "  WHERE h.delivered = 0 AND h.endpoint_id = o.endpoint_id"
            "  AND h.ordering_key = o.ordering_key AND h.seq < o.seq)"
            " ORDER BY o.next_attempt_at, o.seq LIMIT ?",
            now,
            max(0, limit),
        )

    async def record_attempt(
        self, attempt: DeliveryAttempt, delivered: bool, next_attempt_at: float, error: str | None
    ) -> None:
        """Log an attempt; mark delivered, or reschedule at ``next_attempt_at``. The
        event's ``attempts`` grows by one; an already delivered event stays delivered.
        Raises ConflictError if there is no such outbox event."""

        def run(conn: sqlite3.Connection) -> None:
            row = conn.execute(
                "SELECT data FROM outbox WHERE id = ?", (attempt.outbox_id,)
            ).fetchone()
            if row is None:
                raise ConflictError(f"no outbox event {attempt.outbox_id}")
            event = load(OutboxEvent, row[0])
            event = dataclasses.replace(event, attempts=event.attempts + 1)
            if event.delivered_at is None:
                if delivered:
                    event = dataclasses.replace(event, delivered_at=attempt.at, last_error=error)
                else:
                    event = dataclasses.replace(
                        event, next_attempt_at=next_attempt_at, last_error=error
                    )
            conn.execute(
                "INSERT INTO delivery_attempts (outbox_id, attempt, at, data) VALUES (?, ?, ?, ?)",
                (attempt.outbox_id, attempt.attempt, attempt.at, dumps(attempt)),
            )
            conn.execute(
                "UPDATE outbox SET delivered = ?, next_attempt_at = ?, data = ? WHERE id = ?",
                (
                    int(event.delivered_at is not None),
                    event.next_attempt_at,
                    dumps(event),
                    event.id,
                ),
            )

        await self._tx(run)

    async def list_outbox(
        self, tenant_id: str, *, limit: int = 100, undelivered_only: bool = False
    ) -> list[OutboxEvent]:
        sql = "SELECT data FROM outbox WHERE tenant_id = ?"
        if undelivered_only:
            sql += " AND delivered = 0"
        sql += " ORDER BY seq DESC LIMIT ?"
        return await self._many(OutboxEvent, sql, tenant_id, max(0, limit))

    async def list_attempts(self, outbox_id: str) -> list[DeliveryAttempt]:
        return await self._many(
            DeliveryAttempt,
            "SELECT data FROM delivery_attempts WHERE outbox_id = ? ORDER BY n",
            outbox_id,
        )
