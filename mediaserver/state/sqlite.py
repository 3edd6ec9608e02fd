"""The embedded store: SQLite (stdlib ``sqlite3``) driven from one dedicated thread.

Durability: WAL journal with ``synchronous=FULL``, so a method that returns has its
transaction fsynced to the WAL (an acknowledged write survives SIGKILL of the process
and a power cut). Every public method is one transaction, run on the store's single
worker thread, which also serialises all access to the one connection.

Records are stored as a JSON column (``models.to_dict``) next to real columns for
everything that is looked up, filtered, ordered on or constrained. Slugs and host slugs
share one namespace (the ``slugs`` table, keyed by slug), so a slug used anywhere as a
``slug`` or ``host_slug`` can't be reused as either.

The parts: ``sqlite_schema`` (migrations, opening the connection), ``sqlite_base``
(the worker thread, transactions, record reads), ``sqlite_outbox`` (webhook endpoints
and the outbox), ``sqlite_manage`` (the management calls' SQL); this module puts them
together as ``SqliteStore``.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from . import sqlite_manage
from .models import ApiKey, GuestInvite, Link, OutboxEvent, Tenant
from .sqlite_base import dumps, load
from .sqlite_outbox import SqliteWebhookOutbox, enqueue
from .sqlite_schema import SCHEMA_VERSION
from .store import ConflictError

__all__ = ["SCHEMA_VERSION", "SqliteStore"]


class SqliteStore(SqliteWebhookOutbox):
    """The ``Store`` on SQLite. ``path`` is a file (its directory is created if
    missing) or ``":memory:"`` (a private database that lives as long as the store)."""

    # --- secrets ------------------------------------------------------------------
    async def get_or_create_secret(self, name: str, candidate: str) -> str:
        def run(conn: sqlite3.Connection) -> str:
            conn.execute(
                "INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                (name, candidate),
            )
            row = conn.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
            return str(row[0])

        return await self._tx(run)

    # --- tenants and keys ---------------------------------------------------------
    async def create_tenant(self, tenant: Tenant) -> None:
        await self._tx(
            lambda conn: conn.execute(
                "INSERT INTO tenants (id, created_at, data) VALUES (?, ?, ?)",
                (tenant.id, tenant.created_at, dumps(tenant)),
            )
        )

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        return await self._one(Tenant, "SELECT data FROM tenants WHERE id = ?", tenant_id)

    async def list_tenants(self) -> list[Tenant]:
        return await self._many(Tenant, "SELECT data FROM tenants ORDER BY created_at, id")

    async def update_tenant(self, tenant_id: str, changes: Mapping[str, Any]) -> Tenant | None:
        return await self._tx(lambda conn: sqlite_manage.update_tenant(conn, tenant_id, changes))

    async def add_api_key(self, key: ApiKey) -> None:
        await self._tx(
            lambda conn: conn.execute(
                "INSERT INTO api_keys (id, tenant_id, created_at, data) VALUES (?, ?, ?, ?)",
                (key.id, key.tenant_id, key.created_at, dumps(key)),
            )
        )

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        return await self._one(ApiKey, "SELECT data FROM api_keys WHERE id = ?", key_id)

    async def list_api_keys(self, tenant_id: str) -> list[ApiKey]:
        return await self._many(
            ApiKey,
            "SELECT data FROM api_keys WHERE tenant_id = ? ORDER BY created_at, id",
            tenant_id,
        )

    async def revoke_api_key(self, key_id: str, at: float) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT data FROM api_keys WHERE id = ?", (key_id,)).fetchone()
            if row is None:
                return False
            key = load(ApiKey, row[0])
            if key.revoked_at is None:
                revoked = dataclasses.replace(key, revoked_at=at)
                conn.execute("UPDATE api_keys SET data = ? WHERE id = ?", (dumps(revoked), key_id))
            return True

        return await self._tx(run)

    # --- links --------------------------------------------------------------------
    async def create_link(
        self,
        link: Link,
        natural_key: str | None,
        idempotency_key: str | None,
        *,
        events: Sequence[OutboxEvent] = (),
    ) -> tuple[Link, bool]:
        """See ``Store.create_link``: ``events`` are enqueued in the same transaction as
        the insert, and only if the link is created."""

        def run(conn: sqlite3.Connection) -> tuple[Link, bool]:
            for column, value in (
                ("idempotency_key", idempotency_key),
                ("natural_key", natural_key),
            ):
                if value is None:
                    continue
                row = conn.execute(
                    f"SELECT data FROM links WHERE tenant_id = ? AND {column} = ?",
                    (link.tenant_id, value),
                ).fetchone()
                if row is not None:
                    return load(Link, row[0]), False
            if link.slug == link.host_slug:
                raise ConflictError("slug and host_slug must differ")
            conn.execute(
                "INSERT INTO links (id, tenant_id, slug, host_slug, natural_key,"
                " idempotency_key, event_id, calendar_id, user_id, created_at, version, data,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    link.id,
                    link.tenant_id,
                    link.slug,
                    link.host_slug,
                    natural_key,
                    idempotency_key,
                    link.event_id,
                    link.calendar_id,
                    link.user_id,
                    link.created_at,
                    link.version,
                    dumps(link),
                    link.updated_at,
                ),
            )
            conn.executemany(
                "INSERT INTO slugs (slug, link_id) VALUES (?, ?)",
                [(link.slug, link.id), (link.host_slug, link.id)],
            )
            enqueue(conn, events)
            return link, True

        return await self._tx(run)

    async def get_link(self, link_id: str) -> Link | None:
        return await self._one(Link, "SELECT data FROM links WHERE id = ?", link_id)

    async def get_link_by_slug(self, slug: str) -> Link | None:
        return await self._one(
            Link,
            "SELECT links.data FROM slugs JOIN links ON links.id = slugs.link_id"
            " WHERE slugs.slug = ?",
            slug,
        )

    async def find_links(
        self,
        tenant_id: str,
        *,
        event_id: str | None = None,
        calendar_id: str | None = None,
        user_id: str | None = None,
        limit: int = 100,
    ) -> list[Link]:
        sql = "SELECT data FROM links WHERE tenant_id = ?"
        params: list[Any] = [tenant_id]
        for column, value in (
            ("event_id", event_id),
            ("calendar_id", calendar_id),
            ("user_id", user_id),
        ):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        params.append(max(0, limit))
        return await self._many(Link, sql, *params)

    async def update_link(
        self, link: Link, expected_version: int, *, events: Sequence[OutboxEvent] = ()
    ) -> Link:
        """See ``Store.update_link``: ``events`` are enqueued in the same transaction as
        the successful compare-and-set."""
        stored = dataclasses.replace(link, version=expected_version + 1)

        def run(conn: sqlite3.Connection) -> Link:
            row = conn.execute(
                "SELECT tenant_id, version FROM links WHERE id = ?", (link.id,)
            ).fetchone()
            if row is None:
                raise ConflictError(f"no link {link.id}")
            if row[1] != expected_version:
                raise ConflictError(
                    f"link {link.id} is at version {row[1]}, not {expected_version}"
                )
            if row[0] != link.tenant_id:
                raise ConflictError("a link's tenant_id can't change")
            if link.slug == link.host_slug:
                raise ConflictError("slug and host_slug must differ")
            conn.execute("DELETE FROM slugs WHERE link_id = ?", (link.id,))
            conn.executemany(
                "INSERT INTO slugs (slug, link_id) VALUES (?, ?)",
                [(link.slug, link.id), (link.host_slug, link.id)],
            )
            conn.execute(
                "UPDATE links SET slug = ?, host_slug = ?, event_id = ?, calendar_id = ?,"
                " user_id = ?, created_at = ?, version = ?, data = ?, updated_at = ? WHERE id = ?",
                (
                    stored.slug,
                    stored.host_slug,
                    stored.event_id,
                    stored.calendar_id,
                    stored.user_id,
                    stored.created_at,
                    stored.version,
                    dumps(stored),
                    stored.updated_at,
                    stored.id,
                ),
            )
            enqueue(conn, events)
            return stored

        return await self._tx(run)

    # --- guest invites ------------------------------------------------------------
    async def add_guest_invite(self, invite: GuestInvite) -> None:
        await self._tx(
            lambda conn: conn.execute(
                "INSERT INTO guest_invites (id, link_id, tenant_id, token, created_at, data)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    invite.id,
                    invite.link_id,
                    invite.tenant_id,
                    invite.token,
                    invite.created_at,
                    dumps(invite),
                ),
            )
        )

    async def get_guest_invite(self, token: str) -> GuestInvite | None:
        return await self._one(GuestInvite, "SELECT data FROM guest_invites WHERE token = ?", token)

    async def list_guest_invites(self, link_id: str) -> list[GuestInvite]:
        return await self._many(
            GuestInvite,
            "SELECT data FROM guest_invites WHERE link_id = ? ORDER BY created_at, id",
            link_id,
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
        data = json.dumps(report, separators=(",", ":"))
        await self._tx(
            lambda conn: conn.execute(
                "INSERT INTO meeting_reports (id, link_id, tenant_id, finished_at, data)"
                " VALUES (?, ?, ?, ?, ?)",
                (report_id, link_id, tenant_id, finished_at, data),
            )
        )

    async def list_meeting_reports(self, link_id: str, limit: int = 20) -> list[dict[str, Any]]:
        """The link's reports, newest ``finished_at`` first (ties: larger id first)."""

        def run(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                "SELECT data FROM meeting_reports WHERE link_id = ?"
                " ORDER BY finished_at DESC, id DESC LIMIT ?",
                (link_id, max(0, limit)),
            ).fetchall()
            return [json.loads(row[0]) for row in rows]

        return await self._call(run)

    # --- management calls (issue 17; the SQL is in sqlite_manage.py) ----------------
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
        return await self._call(
            lambda conn: sqlite_manage.list_links_page(
                conn,
                tenant_id,
                updated_since=updated_since,
                after=after,
                event_id=event_id,
                calendar_id=calendar_id,
                limit=limit,
            )
        )

    async def revoke_guest_invite(self, invite_id: str, at: float) -> bool:
        return await self._tx(lambda conn: sqlite_manage.revoke_guest_invite(conn, invite_id, at))

    async def revoke_api_key_keeping_admin(self, key_id: str, at: float) -> str:
        return await self._tx(
            lambda conn: sqlite_manage.revoke_api_key_keeping_admin(conn, key_id, at)
        )

    # --- recordings -----------------------------------------------------------------
    async def put_recording(self, manifest: dict[str, Any]) -> None:
        data = json.dumps(manifest, separators=(",", ":"))
        row = (
            str(manifest["id"]),
            str(manifest.get("link_id") or ""),
            float(manifest.get("started_at") or 0.0),
            data,
        )
        await self._tx(
            lambda conn: conn.execute(
                "INSERT INTO recordings (id, link_id, started_at, data) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET link_id = excluded.link_id,"
                " started_at = excluded.started_at, data = excluded.data",
                row,
            )
        )

    async def get_recording(self, recording_id: str) -> dict[str, Any] | None:
        def run(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = conn.execute(
                "SELECT data FROM recordings WHERE id = ?", (recording_id,)
            ).fetchone()
            return None if row is None else dict(json.loads(row[0]))

        return await self._call(run)

    async def list_recordings(self, link_id: str, limit: int = 50) -> list[dict[str, Any]]:
        def run(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                "SELECT data FROM recordings WHERE link_id = ?"
                " ORDER BY started_at DESC, id DESC LIMIT ?",
                (link_id, max(0, limit)),
            ).fetchall()
            return [json.loads(row[0]) for row in rows]

        return await self._call(run)

    async def delete_recording(self, recording_id: str) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute("DELETE FROM recordings WHERE id = ?", (recording_id,))
            return cursor.rowcount > 0

        return await self._tx(run)
