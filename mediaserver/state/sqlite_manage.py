"""The management operations of ``SqliteStore`` (issue 17): the link listing by
``(created_at, id)`` with ``updated_since``, revoking guest invites, changing webhook
endpoints and revoking API keys except a tenant's last admin key.

Each function runs on the store's worker thread inside the caller's transaction (or
as one read); ``sqlite.py`` (``sqlite_outbox.py`` for the webhook endpoints) wraps
them as store methods.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from .models import ApiKey, GuestInvite, Link, Tenant, WebhookEndpoint, from_dict, to_dict

__all__ = [
    "MIGRATION_LINKS_UPDATED_AT",
    "list_links_page",
    "revoke_api_key_keeping_admin",
    "revoke_guest_invite",
    "update_tenant",
    "update_webhook_endpoint",
]

#: Schema 2 -> 3: links get an indexed ``updated_at`` column (the listing's
#: ``updated_since``), filled from the stored records.
MIGRATION_LINKS_UPDATED_AT = [
    "ALTER TABLE links ADD COLUMN updated_at REAL NOT NULL DEFAULT 0",
    "UPDATE links SET updated_at = json_extract(data, '$.updated_at')",
    "CREATE INDEX links_by_tenant_updated ON links (tenant_id, updated_at)",
]


def _dumps(obj: Any) -> str:
    return json.dumps(to_dict(obj), separators=(",", ":"), sort_keys=True)


def list_links_page(
    conn: sqlite3.Connection,
    tenant_id: str,
    *,
    updated_since: float | None,
    after: tuple[float, str] | None,
    event_id: str | None,
    calendar_id: str | None,
    limit: int,
) -> list[Link]:
    sql = "SELECT data FROM links WHERE tenant_id = ?"
    params: list[Any] = [tenant_id]
    if updated_since is not None:
        sql += " AND updated_at >= ?"
        params.append(updated_since)
    if after is not None:
        sql += " AND (created_at < ? OR (created_at = ? AND id < ?))"
        params.extend([after[0], after[0], after[1]])
    for column, value in (("event_id", event_id), ("calendar_id", calendar_id)):
        if value is not None:
            sql += f" AND {column} = ?"
            params.append(value)
    sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
    params.append(max(0, limit))
    return [from_dict(Link, json.loads(row[0])) for row in conn.execute(sql, params)]


def revoke_guest_invite(conn: sqlite3.Connection, invite_id: str, at: float) -> bool:
    row = conn.execute("SELECT data FROM guest_invites WHERE id = ?", (invite_id,)).fetchone()
    if row is None:
        return False
    invite = from_dict(GuestInvite, json.loads(row[0]))
    if invite.revoked_at is None:
        revoked = dataclasses.replace(invite, revoked_at=at)
        conn.execute("UPDATE guest_invites SET data = ? WHERE id = ?", (_dumps(revoked), invite_id))
    return True


def update_webhook_endpoint(
    conn: sqlite3.Connection, endpoint_id: str, changes: Mapping[str, Any]
) -> WebhookEndpoint | None:
    if {"id", "tenant_id"} & set(changes):
        raise ValueError("a webhook endpoint's id and tenant_id cannot change")
    row = conn.execute("SELECT data FROM webhook_endpoints WHERE id = ?", (endpoint_id,)).fetchone()
    if row is None:
        return None
    endpoint = dataclasses.replace(from_dict(WebhookEndpoint, json.loads(row[0])), **changes)
    conn.execute(
        "UPDATE webhook_endpoints SET data = ? WHERE id = ?", (_dumps(endpoint), endpoint_id)
    )
    return endpoint


def update_tenant(
    conn: sqlite3.Connection, tenant_id: str, changes: Mapping[str, Any]
) -> Tenant | None:
    if "id" in changes:
        raise ValueError("a tenant's id cannot change")
    row = conn.execute("SELECT data FROM tenants WHERE id = ?", (tenant_id,)).fetchone()
    if row is None:
        return None
    tenant = dataclasses.replace(from_dict(Tenant, json.loads(row[0])), **changes)
    conn.execute("UPDATE tenants SET data = ? WHERE id = ?", (_dumps(tenant), tenant_id))
    return tenant


def _active_admin(key: ApiKey) -> bool:
    return key.revoked_at is None and "admin" in key.scopes


def revoke_api_key_keeping_admin(conn: sqlite3.Connection, key_id: str, at: float) -> str:
    row = conn.execute("SELECT data FROM api_keys WHERE id = ?", (key_id,)).fetchone()
    if row is None:
        return "missing"
    key = from_dict(ApiKey, json.loads(row[0]))
    if key.revoked_at is not None:
        return "already"
    if _active_admin(key):
        others = conn.execute(
            "SELECT data FROM api_keys WHERE tenant_id = ? AND id != ?", (key.tenant_id, key_id)
        ).fetchall()
        if not any(_active_admin(from_dict(ApiKey, json.loads(r[0]))) for r in others):
            return "last-admin"
    revoked = dataclasses.replace(key, revoked_at=at)
    conn.execute("UPDATE api_keys SET data = ? WHERE id = ?", (_dumps(revoked), key_id))
    return "revoked"
