"""The embedded store: SQLite (stdlib ``sqlite3``) driven from one dedicated thread.

Durability: WAL journal with ``synchronous=FULL``, so a method that returns has its
transaction fsynced to the WAL (an acknowledged write survives SIGKILL of the process
and a power cut). Every public method is one transaction, run on the store's single
worker thread, which also serialises all access to the one connection.

Records are stored as a JSON column (``models.to_dict``) next to real columns for
everything that is looked up, filtered, ordered on or constrained. Slugs and host slugs
share one namespace (the ``slugs`` table, keyed by slug), so a slug used anywhere as a
``slug`` or ``host_slug`` can't be reused as either.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from . import sqlite_manage
from .models import (
    ApiKey,
    DeliveryAttempt,
    GuestInvite,
    Link,
    OutboxEvent,
    Tenant,
    WebhookEndpoint,
    from_dict,
    to_dict,
)
from .store import ConflictError

__all__ = ["SCHEMA_VERSION", "SqliteStore"]

T = TypeVar("T")
R = TypeVar("R")

# Each migration takes the schema from version ``i`` to ``i + 1`` (index ``i``); a
# migration is a list of statements run in one transaction with the version bump.
# Append new migrations; never edit an applied one.
_MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE secrets (
            name TEXT PRIMARY KEY,
            value TEXT NOT NULL
        )""",
        """CREATE TABLE tenants (
            id TEXT PRIMARY KEY,
            created_at REAL NOT NULL,
            data TEXT NOT NULL
        )""",
        """CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            tenant_id TEXT NOT NULL,
            created_at REAL NOT NULL,
            data TEXT NOT NULL
        )""",
        "CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at)",
        """CREATE TABLE links (
            id TEXT PRIMARY KEY,
            tenant_id TEXT NOT NULL,
            slug TEXT NOT NULL,
            host_slug TEXT NOT NULL,
            natural_key TEXT,
            idempotency_key TEXT,
            event_id TEXT,
            calendar_id TEXT,
            user_id TEXT,
            created_at REAL NOT NULL,
            version INTEGER NOT NULL,
            data TEXT NOT NULL,
            UNIQUE (tenant_id, natural_key),
            UNIQUE (tenant_id, idempotency_key)
        )""",
        "CREATE INDEX links_by_tenant ON links (tenant_id, created_at)",
        "CREATE INDEX links_by_event ON links (tenant_id, event_id)",
        "CREATE INDEX links_by_calendar ON links (tenant_id, calendar_id)",
        "CREATE INDEX links_by_user ON links (tenant_id, user_id)",
        # One namespace for slugs and host slugs: the primary key is the uniqueness rule.
        """CREATE TABLE slugs (
            slug TEXT PRIMARY KEY,
            link_id TEXT NOT NULL REFERENCES links (id) ON DELETE CASCADE
        )""",
        "CREATE INDEX slugs_by_link ON slugs (link_id)",
        """CREATE TABLE guest_invites (
            id TEXT PRIMARY KEY,
            link_id TEXT NOT NULL,
            tenant_id TEXT NOT NULL,
            token TEXT NOT NULL UNIQUE,
            created_at REAL NOT NULL,
            data TEXT NOT NULL
        )""",
        "CREATE INDEX guest_invites_by_link ON guest_invites (link_id, created_at)",
        """CREATE TABLE webhook_endpoints (
            id TEXT PRIMARY KEY,
            tenant_id TEXT NOT NULL,
            created_at REAL NOT NULL,
            data TEXT NOT NULL
        )""",
        "CREATE INDEX webhook_endpoints_by_tenant ON webhook_endpoints (tenant_id, created_at)",
        # seq is the rowid: AUTOINCREMENT makes it strictly increasing, never reused.
        """CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            tenant_id TEXT NOT NULL,
            endpoint_id TEXT NOT NULL,
            ordering_key TEXT NOT NULL,
            delivered INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL,
            created_at REAL NOT NULL,
            data TEXT NOT NULL
        )""",
        # The undelivered queue of each (endpoint, ordering key), in seq order.
        """CREATE INDEX outbox_queue ON outbox (endpoint_id, ordering_key, seq)
            WHERE delivered = 0""",
        "CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE delivered = 0",
        "CREATE INDEX outbox_by_tenant ON outbox (tenant_id, delivered, seq)",
        """CREATE TABLE delivery_attempts (
            n INTEGER PRIMARY KEY AUTOINCREMENT,
            outbox_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            at REAL NOT NULL,
            data TEXT NOT NULL
        )""",
        "CREATE INDEX delivery_attempts_by_outbox ON delivery_attempts (outbox_id, n)",
    ],
    # 1 -> 2: meeting reports (``data`` is the report dict's JSON, as given).
    [
        """CREATE TABLE meeting_reports (
            id TEXT PRIMARY KEY,
            link_id TEXT NOT NULL,
            tenant_id TEXT NOT NULL,
            finished_at REAL NOT NULL,
            data TEXT NOT NULL
        )""",
        "CREATE INDEX meeting_reports_by_link ON meeting_reports (link_id, finished_at)",
    ],
    # 2 -> 3: links.updated_at, indexed (the listing's updated_since)
    sqlite_manage.MIGRATION_LINKS_UPDATED_AT,
    # 3 -> 4: recordings (``data`` is the manifest's JSON, replaced as it changes).
    [
        """CREATE TABLE recordings (
            id TEXT PRIMARY KEY,
            link_id TEXT NOT NULL,
            started_at REAL NOT NULL,
            data TEXT NOT NULL
        )""",
        "CREATE INDEX recordings_by_link ON recordings (link_id, started_at)",
    ],
]

SCHEMA_VERSION = len(_MIGRATIONS)


def _dumps(obj: Any) -> str:
    return json.dumps(to_dict(obj), separators=(",", ":"), sort_keys=True)


def _load(cls: type[T], data: str) -> T:
    return from_dict(cls, json.loads(data))


def _loads(cls: type[T], rows: list[Any]) -> list[T]:
    return [_load(cls, row[0]) for row in rows]


def _enqueue(conn: sqlite3.Connection, events: Sequence[OutboxEvent]) -> list[OutboxEvent]:
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
        conn.execute("UPDATE outbox SET data = ? WHERE seq = ?", (_dumps(stored), seq))
        out.append(stored)
    return out


def _connect(path: str) -> sqlite3.Connection:
    if path != ":memory:" and not path.startswith("file:"):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, uri=path.startswith("file:"))
    try:
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        _migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (0)")
            current = 0
        else:
            current = int(row[0])
        if current > SCHEMA_VERSION:
            raise RuntimeError(
                f"database schema version {current} is newer than this code's "
                f"({SCHEMA_VERSION}); upgrade the server"
            )
        for version in range(current, SCHEMA_VERSION):
            for statement in _MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute("UPDATE schema_version SET version = ?", (version + 1,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


class SqliteStore:
    """The ``Store`` on SQLite. ``path`` is a file (its directory is created if
    missing) or ``":memory:"`` (a private database that lives as long as the store)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    # --- plumbing -----------------------------------------------------------------
    async def open(self) -> None:
        if self._executor is not None:
            return
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        try:
            self._conn = await asyncio.get_running_loop().run_in_executor(
                executor, _connect, self.path
            )
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._executor = executor

    async def close(self) -> None:
        executor, conn = self._executor, self._conn
        self._executor = self._conn = None
        if executor is None:
            return
        try:
            if conn is not None:
                await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        finally:
            executor.shutdown(wait=True)

    async def _call(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        """Run ``fn(conn)`` on the worker thread, outside a transaction (single reads)."""
        executor, conn = self._executor, self._conn
        if executor is None or conn is None:
            raise RuntimeError("SqliteStore is not open (call open() first)")
        return await asyncio.get_running_loop().run_in_executor(executor, fn, conn)

    async def _tx(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        """Run ``fn(conn)`` on the worker thread as one write transaction; a uniqueness
        violation rolls it back and raises ConflictError."""

        def run(conn: sqlite3.Connection) -> R:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except sqlite3.IntegrityError as exc:
                conn.execute("ROLLBACK")
                raise ConflictError(str(exc)) from exc
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return await self._call(run)

    async def _one(self, cls: type[T], sql: str, *params: Any) -> T | None:
        def run(conn: sqlite3.Connection) -> T | None:
            row = conn.execute(sql, params).fetchone()
            return None if row is None else _load(cls, row[0])

        return await self._call(run)

    async def _many(self, cls: type[T], sql: str, *params: Any) -> list[T]:
        return await self._call(lambda conn: _loads(cls, conn.execute(sql, params).fetchall()))

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
                (tenant.id, tenant.created_at, _dumps(tenant)),
            )
        )

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        return await self._one(Tenant, "SELECT data FROM tenants WHERE id = ?", tenant_id)

    async def list_tenants(self) -> list[Tenant]:
        return await self._many(Tenant, "SELECT data FROM tenants ORDER BY created_at, id")

    async def add_api_key(self, key: ApiKey) -> None:
        await self._tx(
            lambda conn: conn.execute(
                "INSERT INTO api_keys (id, tenant_id, created_at, data) VALUES (?, ?, ?, ?)",
                (key.id, key.tenant_id, key.created_at, _dumps(key)),
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
            key = _load(ApiKey, row[0])
            if key.revoked_at is None:
                revoked = dataclasses.replace(key, revoked_at=at)
                conn.execute("UPDATE api_keys SET data = ? WHERE id = ?", (_dumps(revoked), key_id))
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
                    return _load(Link, row[0]), False
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
                    _dumps(link),
                    link.updated_at,
                ),
            )
            conn.executemany(
                "INSERT INTO slugs (slug, link_id) VALUES (?, ?)",
                [(link.slug, link.id), (link.host_slug, link.id)],
            )
            _enqueue(conn, events)
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
                    _dumps(stored),
                    stored.updated_at,
                    stored.id,
                ),
            )
            _enqueue(conn, events)
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
                    _dumps(invite),
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

    # --- webhooks -----------------------------------------------------------------
    async def add_webhook_endpoint(self, endpoint: WebhookEndpoint) -> None:
        await self._tx(
            lambda conn: conn.execute(
                "INSERT INTO webhook_endpoints (id, tenant_id, created_at, data)"
                " VALUES (?, ?, ?, ?)",
                (endpoint.id, endpoint.tenant_id, endpoint.created_at, _dumps(endpoint)),
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
            endpoint = _load(WebhookEndpoint, row[0])
            if endpoint.disabled_at is None:
                disabled = dataclasses.replace(endpoint, disabled_at=at)
                conn.execute(
                    "UPDATE webhook_endpoints SET data = ? WHERE id = ?",
                    (_dumps(disabled), endpoint_id),
                )
            return True

        return await self._tx(run)

    # --- outbox -------------------------------------------------------------------
    async def enqueue_events(self, events: list[OutboxEvent]) -> list[OutboxEvent]:
        """Append to the outbox in order, assigning increasing ``seq``; returns them.
        A duplicate event id raises ConflictError and nothing is enqueued."""

        return await self._tx(lambda conn: _enqueue(conn, events))

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
            event = _load(OutboxEvent, row[0])
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
                (attempt.outbox_id, attempt.attempt, attempt.at, _dumps(attempt)),
            )
            conn.execute(
                "UPDATE outbox SET delivered = ?, next_attempt_at = ?, data = ? WHERE id = ?",
                (
                    int(event.delivered_at is not None),
                    event.next_attempt_at,
                    _dumps(event),
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

    async def update_webhook_endpoint(
        self, endpoint_id: str, changes: Mapping[str, Any]
    ) -> WebhookEndpoint | None:
        return await self._tx(
            lambda conn: sqlite_manage.update_webhook_endpoint(conn, endpoint_id, changes)
        )

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
                " ON CONFLICT (id) DO UPDATE SET data = excluded.data",
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
