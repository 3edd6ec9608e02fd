"""``AccountStore`` on the embedded SQLite store: tables of its own (``accounts_*``),
created on first use, on the ``SqliteStore``'s connection and worker thread, so each
method is one transaction like the store's own."""

from __future__ import annotations

import dataclasses
import sqlite3
from typing import TypeVar

from .accounts import Credential, Grant, Member, OAuthClient, dump_record, load_record
from .sqlite import SqliteStore

__all__ = ["SqliteAccountStore"]

T = TypeVar("T")

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS accounts_members (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        email TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL,
        data TEXT NOT NULL
    )""",
    """CREATE INDEX IF NOT EXISTS accounts_members_by_tenant
        ON accounts_members (tenant_id, created_at)""",
    """CREATE TABLE IF NOT EXISTS accounts_credentials (
        hash TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        member_id TEXT NOT NULL,
        expires_at REAL NOT NULL,
        data TEXT NOT NULL
    )""",
    """CREATE INDEX IF NOT EXISTS accounts_credentials_by_member
        ON accounts_credentials (member_id, kind)""",
    """CREATE INDEX IF NOT EXISTS accounts_credentials_by_expiry
        ON accounts_credentials (expires_at)""",
    """CREATE TABLE IF NOT EXISTS accounts_clients (
        id TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        data TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS accounts_grants (
        id TEXT PRIMARY KEY,
        member_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        data TEXT NOT NULL
    )""",
    """CREATE INDEX IF NOT EXISTS accounts_grants_by_member
        ON accounts_grants (member_id, created_at)""",
    """CREATE TABLE IF NOT EXISTS accounts_failures (
        key TEXT NOT NULL,
        at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS accounts_failures_by_key ON accounts_failures (key, at)",
    "CREATE INDEX IF NOT EXISTS accounts_failures_by_time ON accounts_failures (at)",
]
#: Credentials are kept this long after they expire (a used code or refresh token is
#: recognised as reused until then), then dropped when the next one is added.
KEEP_EXPIRED_SECONDS = 86400.0


def _with(cred: Credential, field: str, at: float) -> Credential:
    if field == "used_at":
        return dataclasses.replace(cred, used_at=at)
    return dataclasses.replace(cred, revoked_at=at)


class SqliteAccountStore:
    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self._ready = False

    async def _ensure(self) -> None:
        if not self._ready:

            def create(conn: sqlite3.Connection) -> None:
                for statement in _SCHEMA:
                    conn.execute(statement)

            await self._store._tx(create)
            self._ready = True

    async def _write(self, sql: str, *params: object) -> int:
        await self._ensure()
        return await self._store._tx(lambda conn: conn.execute(sql, params).rowcount)

    async def _one(self, cls: type[T], sql: str, *params: object) -> T | None:
        await self._ensure()

        def run(conn: sqlite3.Connection) -> T | None:
            row = conn.execute(sql, params).fetchone()
            return None if row is None else load_record(cls, row[0])

        return await self._store._call(run)

    async def _many(self, cls: type[T], sql: str, *params: object) -> list[T]:
        await self._ensure()
        rows = await self._store._call(lambda conn: conn.execute(sql, params).fetchall())
        return [load_record(cls, row[0]) for row in rows]

    # --- members ------------------------------------------------------------------
    async def add_member(self, member: Member) -> None:
        await self._write(
            "INSERT INTO accounts_members (id, tenant_id, email, created_at, data)"
            " VALUES (?, ?, ?, ?, ?)",
            member.id,
            member.tenant_id,
            member.email,
            member.created_at,
            dump_record(member),
        )

    async def get_member(self, member_id: str) -> Member | None:
        return await self._one(Member, "SELECT data FROM accounts_members WHERE id = ?", member_id)

    async def get_member_by_email(self, email: str) -> Member | None:
        return await self._one(Member, "SELECT data FROM accounts_members WHERE email = ?", email)

    async def list_members(self, tenant_id: str) -> list[Member]:
        return await self._many(
            Member,
            "SELECT data FROM accounts_members WHERE tenant_id = ? ORDER BY created_at, id",
            tenant_id,
        )

    async def update_member(self, member: Member) -> None:
        changed = await self._write(
            "UPDATE accounts_members SET data = ? WHERE id = ? AND email = ?",
            dump_record(member),
            member.id,
            member.email,
        )
        if not changed:
            raise KeyError(member.id)

    # --- credentials --------------------------------------------------------------
    async def add_credential(self, credential: Credential) -> None:
        await self._ensure()

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "DELETE FROM accounts_credentials WHERE expires_at < ?",
                (credential.created_at - KEEP_EXPIRED_SECONDS,),
            )
            conn.execute(
                "INSERT INTO accounts_credentials (hash, kind, member_id, expires_at, data)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    credential.hash,
                    credential.kind,
                    credential.member_id,
                    credential.expires_at,
                    dump_record(credential),
                ),
            )

        await self._store._tx(run)

    async def get_credential(self, hash_: str) -> Credential | None:
        return await self._one(
            Credential, "SELECT data FROM accounts_credentials WHERE hash = ?", hash_
        )

    async def _change_credential(self, hash_: str, field: str, at: float) -> Credential | None:
        await self._ensure()

        def run(conn: sqlite3.Connection) -> Credential | None:
            row = conn.execute(
                "SELECT data FROM accounts_credentials WHERE hash = ?", (hash_,)
            ).fetchone()
            if row is None:
                return None
            before = load_record(Credential, row[0])
            if getattr(before, field) is None:
                after = _with(before, field, at)
                conn.execute(
                    "UPDATE accounts_credentials SET data = ? WHERE hash = ?",
                    (dump_record(after), hash_),
                )
            return before

        return await self._store._tx(run)

    async def use_credential(self, hash_: str, at: float) -> Credential | None:
        return await self._change_credential(hash_, "used_at", at)

    async def revoke_credential(self, hash_: str, at: float) -> None:
        await self._change_credential(hash_, "revoked_at", at)

    async def revoke_member_credentials(self, member_id: str, kind: str, at: float) -> int:
        await self._ensure()

        def run(conn: sqlite3.Connection) -> int:
            rows = conn.execute(
                "SELECT hash, data FROM accounts_credentials WHERE member_id = ? AND kind = ?",
                (member_id, kind),
            ).fetchall()
            count = 0
            for hash_, raw in rows:
                cred = load_record(Credential, raw)
                if cred.revoked_at is None:
                    conn.execute(
                        "UPDATE accounts_credentials SET data = ? WHERE hash = ?",
                        (dump_record(dataclasses.replace(cred, revoked_at=at)), hash_),
                    )
                    count += 1
            return count

        return await self._store._tx(run)

    # --- OAuth clients and grants -------------------------------------------------
    async def add_client(self, client: OAuthClient) -> None:
        await self._write(
            "INSERT INTO accounts_clients (id, created_at, data) VALUES (?, ?, ?)",
            client.id,
            client.created_at,
            dump_record(client),
        )

    async def get_client(self, client_id: str) -> OAuthClient | None:
        return await self._one(
            OAuthClient, "SELECT data FROM accounts_clients WHERE id = ?", client_id
        )

    async def list_clients(self) -> list[OAuthClient]:
        return await self._many(
            OAuthClient, "SELECT data FROM accounts_clients ORDER BY created_at, id"
        )

    async def add_grant(self, grant: Grant) -> None:
        await self._write(
            "INSERT INTO accounts_grants (id, member_id, created_at, data) VALUES (?, ?, ?, ?)",
            grant.id,
            grant.member_id,
            grant.created_at,
            dump_record(grant),
        )

    async def get_grant(self, grant_id: str) -> Grant | None:
        return await self._one(Grant, "SELECT data FROM accounts_grants WHERE id = ?", grant_id)

    async def list_grants(self, member_id: str) -> list[Grant]:
        return await self._many(
            Grant,
            "SELECT data FROM accounts_grants WHERE member_id = ? ORDER BY created_at, id",
            member_id,
        )

    async def revoke_grant(self, grant_id: str, at: float, reason: str) -> bool:
        await self._ensure()

        def run(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT data FROM accounts_grants WHERE id = ?", (grant_id,)
            ).fetchone()
            if row is None:
                return False
            grant = load_record(Grant, row[0])
            if grant.revoked_at is not None:
                return False
            after = dataclasses.replace(grant, revoked_at=at, revoked_reason=reason)
            conn.execute(
                "UPDATE accounts_grants SET data = ? WHERE id = ?", (dump_record(after), grant_id)
            )
            return True

        return await self._store._tx(run)

    # --- sign-in throttling -------------------------------------------------------
    async def note_failure(self, key: str, at: float, window: float) -> int:
        await self._ensure()

        def run(conn: sqlite3.Connection) -> int:
            conn.execute("DELETE FROM accounts_failures WHERE at <= ?", (at - window,))
            conn.execute("INSERT INTO accounts_failures (key, at) VALUES (?, ?)", (key, at))
            row = conn.execute(
                "SELECT COUNT(*) FROM accounts_failures WHERE key = ? AND at > ?",
                (key, at - window),
            ).fetchone()
            return int(row[0])

        return await self._store._tx(run)

    async def count_failures(self, key: str, now: float, window: float) -> int:
        await self._ensure()
        row = await self._store._call(
            lambda conn: conn.execute(
                "SELECT COUNT(*) FROM accounts_failures WHERE key = ? AND at > ? AND at <= ?",
                (key, now - window, now),
            ).fetchone()
        )
        return int(row[0])
