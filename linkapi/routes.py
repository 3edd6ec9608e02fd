"""HTTP routes of the link API (an aiohttp sub-application mounted at /v1)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from mediaserver.state.models import Tenant

from .accounts.bearer import MEMBER, MEMBER_AUTH
from .inputs import TEXT_MESSAGE, bad_text, text_errors
from .openapi import OPENAPI, schema_errors
from .problems import ApiProblem, invalid, problem_middleware, unprocessable
from .ratelimit import RateLimiter
from .service import LinkService, iso
from .webhooks import PARKED_PREFIX

__all__ = ["SERVICE", "TENANT", "setup_linkapi"]

SERVICE = web.AppKey("linkapi_service", LinkService)
LIMITER = web.AppKey("linkapi_limiter", RateLimiter)
MAX_BODY = web.AppKey("linkapi_max_body", int)
TENANT = web.RequestKey("linkapi_tenant", Tenant)
KEY_ID = web.RequestKey("linkapi_key_id", str)  # the API key of the request
PUBLIC_PATHS = frozenset({"/v1/openapi.json"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(data).encode(), content_type="application/json"
    )


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in PUBLIC_PATHS:
        return await handler(request)
    service = request.app[SERVICE]
    hook = request.app.get(MEMBER_AUTH)  # a member's OAuth token (linkapi/accounts)
    member = await hook(request) if hook is not None else None
    if member is not None:
        tenant, key_id = member.tenant, ""  # no API key: never admin
    else:
        tenant, key_id = await service.authenticate(request.headers.get("Authorization"))
    # one bucket per tenant, shared by its keys; a tenant may have its own numbers
    decision = request.app[LIMITER].check(
        tenant.id, per_minute=tenant.rate_limit_per_minute, burst=tenant.rate_limit_burst
    )
    limit_headers = decision.headers()
    if not decision.allowed:
        per_minute = tenant.rate_limit_per_minute or service.config.linkapi.rate_limit_per_minute
        raise ApiProblem(
            429,
            "rate-limited",
            "Too many requests",
            f"rate limit of {per_minute}/min exceeded",
            headers={"Retry-After": str(decision.retry_after), **limit_headers},
        )
    request[TENANT] = tenant
    request[KEY_ID] = key_id
    try:
        if member is not None and member.refusal is not None:
            raise member.refusal  # a member token on an operation it may not call: 403
        _check_parameters(request)
        response = await handler(request)
    except ApiProblem as problem:
        problem.headers.update(limit_headers)
        raise
    except web.HTTPException as exc:  # aiohttp's own 404/405 answers
        exc.headers.update(limit_headers)
        raise
    response.headers.update(limit_headers)
    return response


def _check_parameters(request: web.Request) -> None:
    """The text rule (linkapi/inputs.py) for path and query parameters and the one
    free-form header; bodies are checked in ``_body``."""
    params = [*request.match_info.items(), *request.query.items()]
    if "Idempotency-Key" in request.headers:
        params.append(("Idempotency-Key", request.headers["Idempotency-Key"]))
    errors = [
        {"field": name if not bad_text(name) else "(query)", "message": TEXT_MESSAGE}
        for name, value in params
        if bad_text(name) or bad_text(value)
    ]
    if errors:
        raise unprocessable(errors)


async def _body(request: web.Request, schema: str, *, optional: bool = False) -> dict[str, Any]:
    """Read, parse and validate a JSON body against the OpenAPI schema."""
    limit = request.app[MAX_BODY]
    if request.content_length is not None and request.content_length > limit:
        raise ApiProblem(413, "body-too-large", "Request body too large", f"limit is {limit} bytes")
    raw = await request.content.read(limit + 1)
    if len(raw) > limit:
        raise ApiProblem(413, "body-too-large", "Request body too large", f"limit is {limit} bytes")
    if not raw.strip():
        if optional:
            return {}
        raise ApiProblem(400, "invalid-json", "Invalid JSON", "a JSON body is required")
    ctype = request.content_type
    if ctype not in ("application/json", "application/octet-stream", "") and not ctype.endswith(
        "+json"
    ):
        raise ApiProblem(
            415, "unsupported-media-type", "Unsupported media type", "send application/json"
        )
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ApiProblem(400, "invalid-json", "Invalid JSON", str(exc)[:200]) from None
    # the text rule first: the schema's messages would quote the offending strings
    errors = text_errors(data) or schema_errors(schema, data)
    if errors:
        raise unprocessable(errors)
    assert isinstance(data, dict)
    return data


def _tenant(request: web.Request) -> Tenant:
    return request[TENANT]


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", "50")
    value = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 3 else 0
    if not 1 <= value <= 500:
        raise invalid("limit", "must be an integer between 1 and 500")
    return value


def _query_id(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    if value is not None and not 1 <= len(value) <= 256:
        raise invalid(name, "1 to 256 characters")
    return value


_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


async def openapi(request: web.Request) -> web.Response:
    return _json(OPENAPI)


async def create_link(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    idem = request.headers.get("Idempotency-Key")
    if idem is not None and not 1 <= len(idem) <= 255:
        raise invalid("Idempotency-Key", "1 to 255 characters")
    body = await _body(request, "LinkCreate")
    member = request.get(MEMBER)
    link, created = await service.create_event_link(
        _tenant(request), body, idem, member_id=member.member_id if member else None
    )
    return _json(service.link_json(link), 201 if created else 200)


async def get_link(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    link = await service.get_link(_tenant(request), request.match_info["link_id"])
    member = request.get(MEMBER)
    if member is not None and link.member_id != member.member_id:
        raise ApiProblem(404, "not-found", "Not found", "no such link")  # not theirs
    return _json(service.link_json(link))


async def patch_link(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    tenant = _tenant(request)
    await service.get_link(tenant, request.match_info["link_id"])  # 404 before 422
    body = await _body(request, "LinkPatch")
    link = await service.update_link(tenant, request.match_info["link_id"], body)
    return _json(service.link_json(link))


async def delete_link(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    link = await service.revoke_link(_tenant(request), request.match_info["link_id"])
    return _json(service.link_json(link))


async def create_guest_invite(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    tenant = _tenant(request)
    link = await service.get_link(tenant, request.match_info["link_id"])
    body = await _body(request, "GuestInviteCreate", optional=True)
    invite = await service.create_guest_invite(tenant, link.id, body)
    return _json(service.invite_json(invite, link), 201)


async def create_join_token(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    tenant = _tenant(request)
    await service.get_link(tenant, request.match_info["link_id"])
    body = await _body(request, "JoinTokenCreate")
    token, claims, link = await service.create_join_token(
        tenant, request.match_info["link_id"], body
    )
    return _json(
        {
            "token": token,
            "join_url": f"{service.join_url(link)}?token={token}",
            "expires_at": iso(claims.expires_at),
            "role": claims.role,
        },
        201,
    )


async def create_room_token(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    service.check_adhoc_room(request.match_info["room"])  # the path before the body
    body = await _body(request, "RoomTokenCreate")
    token, claims = service.create_room_token(_tenant(request), request.match_info["room"], body)
    return _json(
        {
            "token": token,
            "room": claims.room,
            "room_id": claims.room_id,
            "expires_at": iso(claims.expires_at),
            "role": claims.role,
        },
        201,
    )


async def get_reports(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    link = await service.get_link(_tenant(request), request.match_info["link_id"])
    reports = await service.store.list_meeting_reports(link.id, limit=_limit(request))
    return _json({"reports": [service.report_json(r) for r in reports]})


def _user_id(request: web.Request) -> str:
    user_id = request.match_info["user_id"]
    if not 1 <= len(user_id) <= 256:
        raise invalid("user_id", "1 to 256 characters")
    return user_id


async def put_personal_room(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    user_id = _user_id(request)
    body = await _body(request, "PersonalRoomRequest", optional=True)
    link, created = await service.personal_room(_tenant(request), user_id, body)
    return _json(service.link_json(link), 201 if created else 200)


async def rotate_personal_room(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    link = await service.rotate_personal_room(_tenant(request), _user_id(request))
    return _json(service.link_json(link))


async def create_webhook(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    body = await _body(request, "WebhookCreate")
    endpoint, secret = await service.add_webhook(_tenant(request), body)
    return _json(service.webhook_json(endpoint, secret), 201)


async def list_webhooks(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    eps = await service.store.list_webhook_endpoints(_tenant(request).id)
    return _json({"webhooks": [service.webhook_json(ep) for ep in eps]})


async def delete_webhook(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    ep = await service.disable_webhook(_tenant(request), request.match_info["webhook_id"])
    return _json(service.webhook_json(ep))


async def list_deliveries(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    undelivered = _BOOLEANS.get(request.query.get("undelivered", "false").lower())
    if undelivered is None:
        raise invalid("undelivered", "true or false")
    events = await service.store.list_outbox(
        _tenant(request).id, limit=_limit(request), undelivered_only=undelivered
    )
    out = []
    for ev in events:
        # attempts recorded after the entry was read belong to a later state of it:
        # show the entry as read (two reads, one consistent answer)
        attempts = (await service.store.list_attempts(ev.id))[: ev.attempts]
        # a parked entry is closed out in the store (its queue moves on), never sent
        parked = ev.delivered_at is not None and (ev.last_error or "").startswith(PARKED_PREFIX)
        out.append(
            {
                "id": ev.id,
                "event_id": ev.event_id,
                "type": ev.type,
                "endpoint_id": ev.endpoint_id,
                "created_at": iso(ev.created_at),
                "delivered_at": None if parked else iso(ev.delivered_at),
                "next_attempt_at": None if ev.delivered_at else iso(ev.next_attempt_at),
                "last_error": ev.last_error,
                "parked": parked,
                "attempts": [
                    {
                        "attempt": a.attempt,
                        "at": iso(a.at),
                        "status": a.status,
                        "error": a.error,
                        "duration_ms": a.duration_ms,
                    }
                    for a in attempts
                ],
            }
        )
    return _json({"deliveries": out})


def setup_linkapi(app: web.Application, service: LinkService) -> web.Application:
    """Mount the API at /v1 on ``app``; returns the sub-application."""
    from . import manage_routes  # (imports this module)

    cfg = service.config.linkapi
    v1 = web.Application(middlewares=[problem_middleware, auth_middleware])
    v1[SERVICE] = service
    v1[LIMITER] = RateLimiter(cfg.rate_limit_per_minute, cfg.rate_limit_burst)
    v1[MAX_BODY] = cfg.max_body_bytes
    r = v1.router
    r.add_get("/openapi.json", openapi)
    r.add_post("/links", create_link)
    r.add_get("/links", manage_routes.list_links)  # cursor, updated_since (issue 17)
    r.add_get("/links/{link_id}", get_link)
    r.add_patch("/links/{link_id}", patch_link)
    r.add_delete("/links/{link_id}", delete_link)
    r.add_post("/links/{link_id}/guest-invites", create_guest_invite)
    r.add_post("/links/{link_id}/join-tokens", create_join_token)
    r.add_get("/links/{link_id}/report", get_reports)
    r.add_post("/rooms/{room}/tokens", create_room_token)
    r.add_put("/users/{user_id}/personal-room", put_personal_room)
    r.add_post("/users/{user_id}/personal-room/rotate", rotate_personal_room)
    r.add_post("/webhooks", create_webhook)
    r.add_get("/webhooks", list_webhooks)
    r.add_get("/webhooks/deliveries", list_deliveries)
    # not "deliveries": a 405 there must not advertise this route's DELETE
    r.add_delete("/webhooks/{webhook_id:(?!deliveries$)[^{}/]+}", delete_webhook)
    manage_routes.add_manage_routes(r)  # invites, webhook changes, API keys (issue 17)
    if service.config.accounts.enabled:  # members, OAuth (linkapi/accounts)
        from .accounts.setup import setup_accounts

        setup_accounts(app, v1, service)
    from .recordings import setup_recordings  # it uses this module's helpers

    setup_recordings(app, v1, service)
    app.add_subapp("/v1", v1)
    return v1
