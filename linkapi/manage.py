"""The management calls of the link API (issue 17), over ``LinkService`` (no HTTP
here): the link listing with a cursor and ``updated_since``, guest invites listed and
revoked, webhook endpoints changed, enabled/disabled and pinged, and API keys created,
listed and revoked by the tenant's admin keys.

The cursor is opaque to clients: ``c1.`` and the base64url of the JSON
``[created_at, id]`` of the last link of a page. Links are listed newest first by
(created_at, id), which an update never changes, so paging is stable under concurrent
updates (links created while paging come before the first page: the next sync's
``updated_since`` finds them).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mediaserver.state.models import ApiKey, GuestInvite, Link, OutboxEvent, WebhookEndpoint

from .problems import ApiProblem, invalid
from .secrets_ import hash_secret, new_api_key
from .views import iso

if TYPE_CHECKING:
    from mediaserver.state.models import Tenant

    from .service import LinkService

__all__ = [
    "ADMIN_SCOPE",
    "PING_EVENT",
    "SCOPES",
    "LinkPage",
    "create_api_key",
    "decode_cursor",
    "encode_cursor",
    "list_links_page",
    "own_webhook",
    "ping_webhook",
    "require_admin",
    "revoke_api_key",
    "revoke_guest_invite",
    "update_webhook",
]

ADMIN_SCOPE = "admin"
#: "admin": everything, API keys too; "links": everything but the API keys.
SCOPES = (ADMIN_SCOPE, "links")
PING_EVENT = "webhook.ping"
_CURSOR_PREFIX = "c1."
_CURSOR_MAX = 512


def encode_cursor(link: Link) -> str:
    raw = json.dumps([link.created_at, link.id], separators=(",", ":")).encode()
    return _CURSOR_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The (created_at, id) position of a cursor; a 422 problem naming what is wrong."""
    if not cursor.startswith(_CURSOR_PREFIX) or len(cursor) > _CURSOR_MAX:
        raise invalid("cursor", "not a cursor from this API (use next_cursor as returned)")
    body = cursor[len(_CURSOR_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError):  # also UnicodeDecodeError
        raise invalid(
            "cursor", "corrupted (not base64url JSON); use next_cursor as returned"
        ) from None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or isinstance(value[0], bool)
        or not isinstance(value[0], int | float)
        or not math.isfinite(value[0])
        or not isinstance(value[1], str)
        or not 1 <= len(value[1]) <= 256
    ):
        raise invalid("cursor", "corrupted (not a link position); use next_cursor as returned")
    return float(value[0]), value[1]


@dataclass(frozen=True)
class LinkPage:
    links: list[Link]
    next_cursor: str | None


async def list_links_page(
    service: LinkService,
    tenant: Tenant,
    *,
    cursor: str | None,
    updated_since: float | None,
    event_id: str | None,
    calendar_id: str | None,
    limit: int,
) -> LinkPage:
    after = decode_cursor(cursor) if cursor is not None else None
    links = await service.store.list_links_page(
        tenant.id,
        updated_since=updated_since,
        after=after,
        event_id=event_id,
        calendar_id=calendar_id,
        limit=limit + 1,  # one more: is there a next page?
    )
    more = len(links) > limit
    links = links[:limit]
    return LinkPage(links, encode_cursor(links[-1]) if more else None)


# --- guest invites ---------------------------------------------------------------------
def invite_json(service: LinkService, invite: GuestInvite, link: Link) -> dict[str, Any]:
    return {
        **service.invite_json(invite, link),
        "status": "revoked" if invite.revoked_at is not None else "active",
        "revoked_at": iso(invite.revoked_at),
    }


async def revoke_guest_invite(
    service: LinkService, tenant: Tenant, link_id: str, invite_id: str
) -> tuple[GuestInvite, Link]:
    """Revoke one of the link's invites (no one joins through it any more)."""
    link = await service.get_link(tenant, link_id)
    if not any(inv.id == invite_id for inv in await service.store.list_guest_invites(link.id)):
        raise ApiProblem(404, "not-found", "Not found", "no such guest invite")
    await service.store.revoke_guest_invite(invite_id, service.now())
    if service.on_invite_revoked is not None:  # the guests waiting through it go
        result = service.on_invite_revoked(link, invite_id)
        if asyncio.iscoroutine(result):
            await result
    for inv in await service.store.list_guest_invites(link.id):
        if inv.id == invite_id:
            return inv, link
    raise ApiProblem(404, "not-found", "Not found", "no such guest invite")


# --- webhooks ------------------------------------------------------------------------
async def own_webhook(service: LinkService, tenant: Tenant, webhook_id: str) -> WebhookEndpoint:
    ep = await service.store.get_webhook_endpoint(webhook_id)
    if ep is None or ep.tenant_id != tenant.id:
        raise ApiProblem(404, "not-found", "Not found", "no such webhook")
    return ep


async def update_webhook(
    service: LinkService, tenant: Tenant, webhook_id: str, body: dict[str, Any]
) -> WebhookEndpoint:
    """Change the URL, events or secret; ``active`` disables or enables it again."""
    from .webhooks import webhook_url_problem

    await own_webhook(service, tenant, webhook_id)
    changes: dict[str, Any] = {}
    if "url" in body:
        allow_private = service.config.linkapi.allow_private_webhook_urls
        problem = await webhook_url_problem(body["url"], allow_private)
        if problem:
            raise invalid("url", problem)
        changes["url"] = body["url"]
    if "events" in body:
        changes["events"] = tuple(body["events"])
    if "secret" in body:
        changes["secret"] = body["secret"]
    if "active" in body:
        changes["disabled_at"] = None if body["active"] else service.now()
    ep = await service.store.get_webhook_endpoint(webhook_id)
    if ep is not None and "disabled_at" in changes and (ep.disabled_at is None) == body["active"]:
        del changes["disabled_at"]  # already so: disabling twice keeps the first time
    updated = await service.store.update_webhook_endpoint(webhook_id, changes)
    if updated is None:
        raise ApiProblem(404, "not-found", "Not found", "no such webhook")
    return updated


async def ping_webhook(service: LinkService, tenant: Tenant, webhook_id: str) -> OutboxEvent:
    """A ``webhook.ping`` event for this endpoint only, through the outbox: signed,
    delivered, retried and listed in /v1/webhooks/deliveries like every event."""
    ep = await own_webhook(service, tenant, webhook_id)
    if ep.disabled_at is not None:
        raise ApiProblem(
            409, "webhook-disabled", "Webhook disabled", "enable the endpoint to ping it"
        )
    entries = service.outbox_entries(  # its own queue: not behind a room's events
        tenant.id, PING_EVENT, ep.id, {"webhook_id": ep.id}, [ep]
    )
    (entry,) = await service.store.enqueue_events(entries)
    service.wake_dispatcher()
    return entry


# --- API keys --------------------------------------------------------------------------
async def require_admin(service: LinkService, key_id: str) -> ApiKey:
    """The request's key, or 403 unless it has the admin scope."""
    key = await service.store.get_api_key(key_id)
    if key is None or ADMIN_SCOPE not in key.scopes:
        raise ApiProblem(
            403, "forbidden", "Forbidden", "managing API keys needs a key with the admin scope"
        )
    return key


def api_key_json(key: ApiKey, full: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": key.id,
        "name": key.name,
        "scopes": list(key.scopes),
        "created_at": iso(key.created_at),
        "revoked_at": iso(key.revoked_at),
        "status": "revoked" if key.revoked_at is not None else "active",
    }
    if full is not None:
        out["key"] = full
    return out


async def create_api_key(
    service: LinkService, tenant: Tenant, body: dict[str, Any]
) -> tuple[ApiKey, str]:
    """A new key of the tenant; the full key is returned here once, never stored."""
    key_id, secret, full = new_api_key()
    key = ApiKey(
        id=key_id,
        tenant_id=tenant.id,
        secret_hash=hash_secret(secret),
        created_at=service.now(),
        scopes=tuple(body.get("scopes") or ("links",)),
        name=body.get("name"),
    )
    await service.store.add_api_key(key)
    return key, full


async def revoke_api_key(service: LinkService, tenant: Tenant, key_id: str) -> ApiKey:
    key = await service.store.get_api_key(key_id)
    if key is None or key.tenant_id != tenant.id:
        raise ApiProblem(404, "not-found", "Not found", "no such API key")
    outcome = await service.store.revoke_api_key_keeping_admin(key_id, service.now())
    if outcome == "last-admin":
        raise ApiProblem(
            409,
            "last-admin-key",
            "Last admin key",
            "this is the tenant's last active admin key: create another admin key first"
            " (or revoke it with the CLI)",
        )
    revoked = await service.store.get_api_key(key_id)
    assert revoked is not None
    return revoked
