"""HTTP handlers of the management calls (issue 17); ``add_manage_routes`` mounts them
on the /v1 sub-application (routes.py). The logic is in manage.py."""

from __future__ import annotations

from aiohttp import web

from . import manage
from .problems import invalid
from .routes import KEY_ID, SERVICE, _body, _json, _limit, _query_id, _tenant
from .service import parse_time

__all__ = ["add_manage_routes"]


def _updated_since(request: web.Request) -> float | None:
    raw = request.query.get("updated_since")
    if raw is None:
        return None
    if len(raw) > 64:
        raise invalid("updated_since", "at most 64 characters")
    return parse_time(raw, "updated_since")


async def list_links(request: web.Request) -> web.Response:
    """GET /v1/links: a page of links, newest first."""
    service = request.app[SERVICE]
    page = await manage.list_links_page(
        service,
        _tenant(request),
        cursor=request.query.get("cursor"),
        updated_since=_updated_since(request),
        event_id=_query_id(request, "event_id"),
        calendar_id=_query_id(request, "calendar_id"),
        limit=_limit(request),
    )
    return _json(
        {"links": [service.link_json(ln) for ln in page.links], "next_cursor": page.next_cursor}
    )


async def list_guest_invites(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    link = await service.get_link(_tenant(request), request.match_info["link_id"])
    invites = await service.store.list_guest_invites(link.id)
    return _json({"guest_invites": [manage.invite_json(service, inv, link) for inv in invites]})


async def revoke_guest_invite(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    invite, link = await manage.revoke_guest_invite(
        service, _tenant(request), request.match_info["link_id"], request.match_info["invite_id"]
    )
    return _json(manage.invite_json(service, invite, link))


async def patch_webhook(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    tenant = _tenant(request)
    webhook_id = request.match_info["webhook_id"]
    await manage.own_webhook(service, tenant, webhook_id)  # 404 before 422
    body = await _body(request, "WebhookPatch")
    endpoint = await manage.update_webhook(service, tenant, webhook_id, body)
    return _json(service.webhook_json(endpoint))


async def ping_webhook(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    entry = await manage.ping_webhook(service, _tenant(request), request.match_info["webhook_id"])
    return _json(
        {"delivery_id": entry.id, "event_id": entry.event_id, "webhook_id": entry.endpoint_id},
        202,
    )


async def create_api_key(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    await manage.require_admin(service, request[KEY_ID])
    body = await _body(request, "ApiKeyCreate", optional=True)
    key, full = await manage.create_api_key(service, _tenant(request), body)
    return _json(manage.api_key_json(key, full), 201)


async def list_api_keys(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    await manage.require_admin(service, request[KEY_ID])
    keys = await service.store.list_api_keys(_tenant(request).id)
    return _json({"api_keys": [manage.api_key_json(k) for k in keys]})


async def revoke_api_key(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    await manage.require_admin(service, request[KEY_ID])
    key = await manage.revoke_api_key(service, _tenant(request), request.match_info["key_id"])
    return _json(manage.api_key_json(key))


# a webhook id is never "deliveries" (GET /webhooks/deliveries is another route)
_WEBHOOK = "/webhooks/{webhook_id:(?!deliveries$)[^{}/]+}"


def add_manage_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/links/{link_id}/guest-invites", list_guest_invites)
    router.add_delete("/links/{link_id}/guest-invites/{invite_id}", revoke_guest_invite)
    router.add_patch(_WEBHOOK, patch_webhook)
    router.add_post(_WEBHOOK + "/ping", ping_webhook)
    router.add_post("/api-keys", create_api_key)
    router.add_get("/api-keys", list_api_keys)
    router.add_delete("/api-keys/{key_id}", revoke_api_key)
