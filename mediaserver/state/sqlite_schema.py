"""The SQLite store's schema: the forward-only migrations and opening a connection
(WAL with ``synchronous=FULL``, foreign keys on) that brings the database up to
``SCHEMA_VERSION`` first.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from . import sqlite_manage

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "connect", "migrate"]

# Each migration takes the schema from version ``i`` to ``i + 1`` (index ``i``); a
# migration is a list of statements run in one transaction with the version bump.
# Append new migrations; never edit an applied one.
MIGRATIONS: list[list[str]] = [
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

SCHEMA_VERSION = len(MIGRATIONS)


def connect(path: str) -> sqlite3.Connection:
    if path != ":memory:" and not path.startswith("file:"):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, uri=path.startswith("file:"))
    try:
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def migrate(conn: sqlite3.Connection) -> None:
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
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute("UPDATE schema_version SET version = ?", (version + 1,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
