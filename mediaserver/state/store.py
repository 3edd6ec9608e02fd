"""The durable store interface. Implementations: ``sqlite.SqliteStore`` (embedded
default; ``:memory:`` for the ``memory`` backend) and ``redis_store.RedisStore``.

Every method is atomic on its own. A method that returns has made its write durable
(an acknowledged write survives SIGKILL of the server).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from .models import (
    ApiKey,
    DeliveryAttempt,
    GuestInvite,
    Link,
    OutboxEvent,
    Tenant,
    WebhookEndpoint,
)

__all__ = ["ConflictError", "Store"]


class ConflictError(Exception):
    """A uniqueness or compare-and-set condition failed."""


class Store(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...

    # --- server secrets (e.g. the join-token signing key) ------------------------
    async def get_or_create_secret(self, name: str, candidate: str) -> str:
        """The stored secret ``name``; stores ``candidate`` first if there is none."""
        ...

    # --- tenants and keys ---------------------------------------------------------
    async def create_tenant(self, tenant: Tenant) -> None:
        """Raises ConflictError if the id exists."""
        ...

    async def get_tenant(self, tenant_id: str) -> Tenant | None: ...

    async def update_tenant(self, tenant_id: str, changes: Mapping[str, Any]) -> Tenant | None:
        """Replace the given fields of the tenant in one atomic step (``id`` cannot
        change); the stored tenant, or None if there is none."""
        ...

    async def list_tenants(self) -> list[Tenant]: ...
    async def add_api_key(self, key: ApiKey) -> None: ...
    async def get_api_key(self, key_id: str) -> ApiKey | None: ...
    async def list_api_keys(self, tenant_id: str) -> list[ApiKey]: ...

    async def revoke_api_key(self, key_id: str, at: float) -> bool:
        """False if there is no such key (revoking twice keeps the first time)."""
        ...

    # --- links --------------------------------------------------------------------
    async def create_link(
        self,
        link: Link,
        natural_key: str | None,
        idempotency_key: str | None,
        *,
        events: Sequence[OutboxEvent] = (),
    ) -> tuple[Link, bool]:
        """Store ``link`` unless a link with the same ``natural_key`` (per tenant) or
        the same ``idempotency_key`` (per tenant) exists; return (stored link, created).
        Both keys are scoped to ``link.tenant_id``. Slugs must be unique (ConflictError).

        Transactional outbox: only when the link is actually created (``created`` is
        True), ``events`` are appended to the outbox in the same transaction as the
        insert, in order, with increasing ``seq`` exactly as ``enqueue_events`` would.
        When an existing link is returned, nothing is enqueued. Any conflict (slugs,
        link id, or an event id already in the outbox or repeated in ``events``) raises
        ConflictError and writes neither the link nor any event.
        """
        ...

    async def get_link(self, link_id: str) -> Link | None: ...

    async def get_link_by_slug(self, slug: str) -> Link | None:
        """The link whose ``slug`` or ``host_slug`` is ``slug`` (revoked ones too)."""
        ...

    async def find_links(
        self,
        tenant_id: str,
        *,
        event_id: str | None = None,
        calendar_id: str | None = None,
        user_id: str | None = None,
        limit: int = 100,
    ) -> list[Link]:
        """A tenant's links, newest first, filtered by the given fields."""
        ...

    async def update_link(
        self, link: Link, expected_version: int, *, events: Sequence[OutboxEvent] = ()
    ) -> Link:
        """Replace the link if its stored version is ``expected_version``; the stored
        copy gets ``version = expected_version + 1``. Slug changes update the slug
        index. Raises ConflictError on a version mismatch or a missing link.

        Transactional outbox: ``events`` are appended to the outbox (in order, with
        increasing ``seq`` exactly as ``enqueue_events`` would) in the same transaction
        as the successful compare-and-set. On ConflictError (including an event id
        already in the outbox or repeated in ``events``) neither the link nor any event
        is written."""
        ...

    # --- guest invites ------------------------------------------------------------
    async def add_guest_invite(self, invite: GuestInvite) -> None: ...
    async def get_guest_invite(self, token: str) -> GuestInvite | None: ...
    async def list_guest_invites(self, link_id: str) -> list[GuestInvite]: ...

    # --- webhooks -----------------------------------------------------------------
    async def add_webhook_endpoint(self, endpoint: WebhookEndpoint) -> None: ...
    async def get_webhook_endpoint(self, endpoint_id: str) -> WebhookEndpoint | None: ...
    async def list_webhook_endpoints(self, tenant_id: str) -> list[WebhookEndpoint]: ...

    async def disable_webhook_endpoint(self, endpoint_id: str, at: float) -> bool: ...

    async def enqueue_events(self, events: list[OutboxEvent]) -> list[OutboxEvent]:
        """Append to the outbox in order, assigning increasing ``seq``; returns them."""
        ...

    async def due_events(self, now: float, limit: int = 100) -> list[OutboxEvent]:
        """Undelivered events with ``next_attempt_at <= now`` that are the oldest
        undelivered event of their (endpoint_id, ordering_key): per-room order."""
        ...

    async def record_attempt(
        self, attempt: DeliveryAttempt, delivered: bool, next_attempt_at: float, error: str | None
    ) -> None:
        """Log an attempt; mark delivered, or reschedule at ``next_attempt_at``."""
        ...

    async def list_outbox(
        self, tenant_id: str, *, limit: int = 100, undelivered_only: bool = False
    ) -> list[OutboxEvent]:
        """A tenant's outbox events, newest first."""
        ...

    async def list_attempts(self, outbox_id: str) -> list[DeliveryAttempt]: ...

    # --- meeting reports (attendance and speaking time, written when a room ends) --
    async def add_meeting_report(
        self,
        report_id: str,
        link_id: str,
        tenant_id: str,
        finished_at: float,
        report: dict[str, Any],
    ) -> None:
        """Store a finished meeting's report (JSON-compatible dict). Raises
        ConflictError if ``report_id`` exists."""
        ...

    async def list_meeting_reports(self, link_id: str, limit: int = 20) -> list[dict[str, Any]]:
        """The link's reports, newest ``finished_at`` first (the dicts as stored)."""
        ...

    # --- management calls (issue 17: listing, invites, webhooks, API keys) ---------
    async def list_links_page(
        self,
        tenant_id: str,
        *,
        updated_since: float | None = None,
        after: tuple[float, str] | None = None,
        event_id: str | None = None,
        calendar_id: str | None = None,
        limit: int = 100,
    ) -> list[Link]:
        """A tenant's links newest first by ``(created_at, id)`` (as ``find_links``),
        only those strictly past ``after`` in that order (older, or as old with a
        smaller id), and only those with ``updated_at >= updated_since`` (revoked links
        too). An update never moves a link to another position, so paging with the
        last link's ``(created_at, id)`` as ``after`` sees every link that existed at
        the first page exactly once."""
        ...

    async def revoke_guest_invite(self, invite_id: str, at: float) -> bool:
        """False if there is no such invite (revoking twice keeps the first time)."""
        ...

    async def update_webhook_endpoint(
        self, endpoint_id: str, changes: Mapping[str, Any]
    ) -> WebhookEndpoint | None:
        """Replace the given fields of the endpoint in one atomic step (``id`` and
        ``tenant_id`` cannot change); the stored endpoint, or None if there is none."""
        ...

    async def revoke_api_key_keeping_admin(self, key_id: str, at: float) -> str:
        """Revoke the key unless it is its tenant's last active admin key, checked and
        written in one atomic step: ``"revoked"``, ``"already"`` (first time kept),
        ``"missing"`` or ``"last-admin"`` (nothing written)."""
        ...

    # --- recordings (mediaserver/recording: the manifest of each recording) ---------
    async def put_recording(self, manifest: dict[str, Any]) -> None:
        """Store or replace the manifest of recording ``manifest["id"]``, indexed under
        its ``link_id`` by ``started_at`` (a recording never changes link)."""
        ...

    async def get_recording(self, recording_id: str) -> dict[str, Any] | None: ...

    async def list_recordings(self, link_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """The link's recordings, newest ``started_at`` first (ties: larger id first)."""
        ...

    async def delete_recording(self, recording_id: str) -> bool:
        """False if there was none."""
        ...
