"""The Redis store (``redis.asyncio``).

Durability
----------
"A method that returns has made its write durable" holds only if the Redis server runs
with the append-only file on and fsynced before it replies::

    appendonly yes
    appendfsync always

With ``appendfsync everysec`` (Redis' default when AOF is on) up to about one second of
acknowledged writes can be lost on a crash or power cut; with AOF off, everything since
the last RDB snapshot. This client does not (and must not) change the server's
configuration: that is the operator's job. Needs Redis >= 7.0 (``SET ... NX GET``,
``ZRANGE ... REV``/``BYSCORE``).

Atomicity
---------
Every method is one Redis round of work that can't interleave with another: a Lua
script (``create_link``, ``update_link``, ``enqueue_events``, the inserts, the reads that
span several keys) or an optimistic ``WATCH``/``MULTI``/``EXEC`` transaction where a
stored JSON record is rewritten from Python (``revoke_api_key``,
``disable_webhook_endpoint``, ``record_attempt``), so that numbers in records never pass
through Lua's lossy number formatting. ``create_link`` and ``update_link`` append their
``events`` to the outbox in the same script as the link write (a transactional outbox),
checking every conflict before the first write, since a script's writes are not undone.
The scripts build key names from the prefix (``ARGV[1]``) with the same layout as the
``KEY_*`` constants of ``redis_keys`` (the key layout, documented there), so this
store needs a single Redis instance (or a primary with replicas), not Redis Cluster.

The parts: ``redis_keys`` (the key layout), ``redis_scripts`` (the Lua),
``redis_base`` (connection, scripts, generic record operations), ``redis_outbox``
(webhook endpoints and the outbox), ``redis_manage`` (the management calls' Lua and
helpers); this module puts them together as ``RedisStore``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from . import redis_manage
from .models import ApiKey, GuestInvite, Link, OutboxEvent, Tenant
from .redis_base import dumps, load, score
from .redis_keys import (
    KEY_API_KEY,
    KEY_INVITE,
    KEY_INVITE_IDS,
    KEY_LINK,
    KEY_LINK_INVITES,
    KEY_LINK_RECORDINGS,
    KEY_LINK_REPORTS,
    KEY_RECORDING,
    KEY_REPORT,
    KEY_SECRET,
    KEY_TENANT,
    KEY_TENANT_API_KEYS,
    KEY_TENANTS,
)
from .redis_outbox import RedisWebhookOutbox, outbox_args
from .store import ConflictError

__all__ = ["RedisStore"]


class RedisStore(RedisWebhookOutbox):
    """The ``Store`` on Redis; see the module docstring for the required server
    configuration (AOF with ``appendfsync always``); the key layout is in
    ``redis_keys``."""

    # --- secrets ------------------------------------------------------------------
    async def get_or_create_secret(self, name: str, candidate: str) -> str:
        old = await self._r.set(self._key(KEY_SECRET, name=name), candidate, nx=True, get=True)
        return candidate if old is None else str(old)

    # --- tenants and keys ---------------------------------------------------------
    async def create_tenant(self, tenant: Tenant) -> None:
        await self._insert(
            self._key(KEY_TENANT, id=tenant.id),
            tenant.id,
            dumps(tenant),
            index=[(self._key(KEY_TENANTS), tenant.created_at)],
        )

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        return await self._get(Tenant, self._key(KEY_TENANT, id=tenant_id))

    async def list_tenants(self) -> list[Tenant]:
        return await self._list(
            Tenant, self._key(KEY_TENANTS), KEY_TENANT, newest_first=False, limit=-1
        )

    async def update_tenant(self, tenant_id: str, changes: Mapping[str, Any]) -> Tenant | None:
        if "id" in changes:
            raise ValueError("a tenant's id cannot change")
        return await redis_manage.replace_record(
            self._r, self._key(KEY_TENANT, id=tenant_id), Tenant, changes
        )

    async def add_api_key(self, key: ApiKey) -> None:
        await self._insert(
            self._key(KEY_API_KEY, id=key.id),
            key.id,
            dumps(key),
            index=[(self._key(KEY_TENANT_API_KEYS, tenant_id=key.tenant_id), key.created_at)],
        )

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        return await self._get(ApiKey, self._key(KEY_API_KEY, id=key_id))

    async def list_api_keys(self, tenant_id: str) -> list[ApiKey]:
        return await self._list(
            ApiKey,
            self._key(KEY_TENANT_API_KEYS, tenant_id=tenant_id),
            KEY_API_KEY,
            newest_first=False,
            limit=-1,
        )

    async def revoke_api_key(self, key_id: str, at: float) -> bool:
        return await self._set_once(self._key(KEY_API_KEY, id=key_id), ApiKey, "revoked_at", at)

    # --- links --------------------------------------------------------------------
    @staticmethod
    def _link_args(link: Link) -> dict[str, Any]:
        return {
            "id": link.id,
            "tenant_id": link.tenant_id,
            "slug": link.slug,
            "host_slug": link.host_slug,
            "event_id": link.event_id,
            "calendar_id": link.calendar_id,
            "user_id": link.user_id,
            "score": score(link.created_at),
            "updated": score(link.updated_at),
        }

    async def create_link(
        self,
        link: Link,
        natural_key: str | None,
        idempotency_key: str | None,
        *,
        events: Sequence[OutboxEvent] = (),
    ) -> tuple[Link, bool]:
        """See ``Store.create_link``: ``events`` are enqueued by the same script as the
        insert, and only if the link is created."""
        args = self._link_args(link)
        args["natural_key"] = natural_key
        args["idempotency_key"] = idempotency_key
        result = await self._script(
            "create_link", json.dumps(args), dumps(link), *outbox_args(events)
        )
        if result[0] == "conflict":
            raise ConflictError(result[1])
        if result[0] == "existing":
            return load(Link, result[1]), False
        return link, True

    async def get_link(self, link_id: str) -> Link | None:
        return await self._get(Link, self._key(KEY_LINK, id=link_id))

    async def get_link_by_slug(self, slug: str) -> Link | None:
        raw = await self._script("by_slug", slug)
        return None if raw is None else load(Link, raw)

    async def find_links(
        self,
        tenant_id: str,
        *,
        event_id: str | None = None,
        calendar_id: str | None = None,
        user_id: str | None = None,
        limit: int = 100,
    ) -> list[Link]:
        if limit <= 0:
            return []
        args = {
            "tenant_id": tenant_id,
            "event_id": event_id,
            "calendar_id": calendar_id,
            "user_id": user_id,
            "limit": limit,
        }
        rows = await self._script("find_links", json.dumps(args))
        return [load(Link, row) for row in rows]

    async def update_link(
        self, link: Link, expected_version: int, *, events: Sequence[OutboxEvent] = ()
    ) -> Link:
        """See ``Store.update_link``: ``events`` are enqueued by the same script as the
        successful compare-and-set."""
        stored = dataclasses.replace(link, version=expected_version + 1)
        args = self._link_args(stored)
        args["expected_version"] = expected_version
        result = await self._script(
            "update_link", json.dumps(args), dumps(stored), *outbox_args(events)
        )
        if result[0] == "conflict":
            raise ConflictError(result[1])
        return stored

    # --- guest invites ------------------------------------------------------------
    async def add_guest_invite(self, invite: GuestInvite) -> None:
        await self._insert(
            self._key(KEY_INVITE, token=invite.token),
            invite.token,
            dumps(invite),
            unique=[(self._key(KEY_INVITE_IDS), invite.id)],
            index=[(self._key(KEY_LINK_INVITES, link_id=invite.link_id), invite.created_at)],
        )

    async def get_guest_invite(self, token: str) -> GuestInvite | None:
        return await self._get(GuestInvite, self._key(KEY_INVITE, token=token))

    async def list_guest_invites(self, link_id: str) -> list[GuestInvite]:
        return await self._list(
            GuestInvite,
            self._key(KEY_LINK_INVITES, link_id=link_id),
            KEY_INVITE,
            newest_first=False,
            limit=-1,
        )

    # --- meeting reports ----------------------------------------------------------
    async def add_meeting_report(
        self,
        report_id: str,
        link_id: str,
        tenant_id: str,
        finished_at: float,
        report: dict[str, Any],
    ) -> None:
        """Store a finished meeting's report; ConflictError if ``report_id`` exists. The
        JSON is written verbatim (never decoded by Lua), so its numbers round-trip."""
        await self._insert(
            self._key(KEY_REPORT, id=report_id),
            report_id,
            json.dumps(report, separators=(",", ":")),
            index=[(self._key(KEY_LINK_REPORTS, link_id=link_id), finished_at)],
        )

    async def list_meeting_reports(self, link_id: str, limit: int = 20) -> list[dict[str, Any]]:
        """The link's reports, newest ``finished_at`` first (ties: larger id first)."""
        if limit <= 0:
            return []
        rows = await self._list_raw(
            self._key(KEY_LINK_REPORTS, link_id=link_id),
            KEY_REPORT,
            newest_first=True,
            limit=limit,
        )
        return [json.loads(row) for row in rows]

    # --- management calls (issue 17; the Lua is in redis_manage.py) -----------------
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
        if limit <= 0:
            return []
        args = {
            "tenant_id": tenant_id,
            "event_id": event_id,
            "calendar_id": calendar_id,
            "since": None if updated_since is None else score(updated_since),
            "after_score": None if after is None else score(after[0]),
            "after_id": None if after is None else after[1],
            "limit": limit,
            "candidates_max": redis_manage.CANDIDATES_MAX,
        }
        rows = await self._script("list_links_page", json.dumps(args))
        return [load(Link, row) for row in rows]

    async def revoke_guest_invite(self, invite_id: str, at: float) -> bool:
        token = await self._r.hget(self._key(KEY_INVITE_IDS), invite_id)
        if token is None:
            return False
        return await self._set_once(
            self._key(KEY_INVITE, token=str(token)), GuestInvite, "revoked_at", at
        )

    async def revoke_api_key_keeping_admin(self, key_id: str, at: float) -> str:
        key = self._key(KEY_API_KEY, id=key_id)
        while True:
            raw = await self._r.get(key)
            if raw is None:
                return "missing"
            record = load(ApiKey, str(raw))
            if record.revoked_at is not None:
                return "already"
            revoked = dumps(dataclasses.replace(record, revoked_at=at))
            result = str(
                await self._script("revoke_key", key_id, str(raw), revoked, record.tenant_id)
            )
            if result != "changed":
                return result

    # --- recordings -----------------------------------------------------------------
    async def put_recording(self, manifest: dict[str, Any]) -> None:
        """The manifest and its link's index in one script (acknowledged by a replica
        when there is one, like every other record)."""
        await self._script(
            "put_recording",
            str(manifest["id"]),
            json.dumps(manifest),
            str(manifest.get("link_id") or ""),
            repr(float(manifest.get("started_at") or 0.0)),
        )

    async def get_recording(self, recording_id: str) -> dict[str, Any] | None:
        raw = await self._r.get(self._key(KEY_RECORDING, id=recording_id))
        return None if raw is None else dict(json.loads(str(raw)))

    async def list_recordings(self, link_id: str, limit: int = 50) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        rows = await self._list_raw(
            self._key(KEY_LINK_RECORDINGS, link_id=link_id),
            KEY_RECORDING,
            newest_first=True,
            limit=limit,
        )
        return [json.loads(row) for row in rows]

    async def delete_recording(self, recording_id: str) -> bool:
        return int(await self._script("delete_recording", recording_id)) == 1
