"""/v1/users (tenant key: create members, list them) and /v1/me (a member's token: who
is connected and their personal room). Mounted on the link API by ``setup_linkapi``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mediaserver.state.accounts import Member

from ..problems import ApiProblem, invalid
from ..routes import SERVICE, TENANT, _body, _json
from ..views import iso
from .bearer import MEMBER
from .members import MemberError, Members
from .oauth import OAuthServer

__all__ = ["add_api_routes", "member_json"]

API_MEMBERS = web.AppKey("accounts_api_members", Members)
API_OAUTH = web.AppKey("accounts_api_oauth", OAuthServer)


def member_json(member: Member) -> dict[str, Any]:
    return {
        "id": member.id,
        "email": member.email,
        "name": member.name,
        "tenant_id": member.tenant_id,
        "created_at": iso(member.created_at),
        "password_set": member.password_hash is not None,
    }


def _tenant_key_only(request: web.Request) -> None:
    if MEMBER in request:
        raise ApiProblem(403, "insufficient-scope", "Forbidden", "needs a tenant API key")


async def create_user(request: web.Request) -> web.Response:
    _tenant_key_only(request)
    body = await _body(request, "UserCreate")
    members = request.app[API_MEMBERS]
    try:
        member, token = await members.create(request[TENANT], body["email"], body["name"])
    except MemberError as exc:
        if exc.code == "email_taken":
            raise ApiProblem(409, "email-taken", "Email taken", exc.message) from None
        field, _, message = exc.message.partition(": ")
        raise invalid(field, message) from None
    service = request.app[SERVICE]
    return _json(
        {
            "user": member_json(member),
            "set_password_url": f"{service.public_url}/password/{token}",
            "set_password_expires_at": iso(
                member.created_at + members.config.password_link_ttl_seconds
            ),
        },
        201,
    )


async def list_users(request: web.Request) -> web.Response:
    _tenant_key_only(request)
    members = await request.app[API_MEMBERS].accounts.list_members(request[TENANT].id)
    return _json({"users": [member_json(m) for m in members]})


async def me(request: web.Request) -> web.Response:
    auth = request.get(MEMBER)
    if auth is None:
        raise ApiProblem(403, "insufficient-scope", "Forbidden", "needs a member's access token")
    oauth = request.app[API_OAUTH]
    client = await oauth.accounts.get_client(auth.access.grant.client_id)
    room = await request.app[API_MEMBERS].personal_room(auth.access.member, auth.tenant)
    connection = oauth.connection_json(auth.access.grant, client)
    connection["scope"] = " ".join(auth.access.scope)
    return _json(
        {
            "user": member_json(auth.access.member),
            "connection": connection,
            "personal_room": request.app[SERVICE].link_json(room),
        }
    )


def add_api_routes(v1: web.Application, members: Members, oauth: OAuthServer) -> None:
    v1[API_MEMBERS] = members
    v1[API_OAUTH] = oauth
    v1.router.add_post("/users", create_user)
    v1.router.add_get("/users", list_users)
    v1.router.add_get("/me", me)
