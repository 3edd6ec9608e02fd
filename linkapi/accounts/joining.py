"""Signed-in joining: a member who opens a link of their own tenant joins straight in.

The join page (``/j/{slug}``, not a host URL) opened with a live session cookie and no
``token`` or ``invite`` is answered with a redirect to the same page with a join token
minted for the member (role ``host`` for their own personal room and for links minted
for them with their OAuth token, ``member`` otherwise). The page then joins with it as
with any join token; a token that no longer verifies (the member's own, expired on a
page left open) is replaced the same way on reload. Guests (no session, or a link of
another tenant) are unchanged."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from aiohttp import web

from mediaserver.state import Link
from mediaserver.state.accounts import Member

from ..secrets_ import InvalidToken, JoinClaims, sign_join_token, verify_join_token
from .web_common import MEMBERS, current_session

__all__ = ["member_role", "signed_in_join_middleware"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def member_role(link: Link, member: Member) -> str | None:
    """The role a signed-in member gets on ``link``; None: not theirs to join as member."""
    if link.tenant_id != member.tenant_id:
        return None
    if (link.kind == "personal" and link.user_id == member.id) or link.member_id == member.id:
        return "host"
    return "member"


@web.middleware
async def signed_in_join_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if (
        request.method != "GET"
        or not request.path.startswith("/j/")
        or "invite" in request.query
        or "ms_session" not in request.cookies
    ):
        return await handler(request)
    slug = request.match_info.get("slug")
    session = await current_session(request) if slug else None
    if session is None or slug is None:
        return await handler(request)
    members = request.app[MEMBERS]
    link = await members.links.store.get_link_by_slug(slug)
    if link is None or link.revoked_at is not None or link.profile != "default":
        return await handler(request)  # the page tells what is wrong
    if secrets.compare_digest(slug.encode(), link.host_slug.encode()):
        return await handler(request)  # the host URL makes its holder host already
    role = member_role(link, session.member)
    if role is None:
        return await handler(request)
    now = members.now()
    given = request.query.get("token")
    if given is not None:
        try:  # a valid token (the member's or anyone's) is used as it is
            verify_join_token(members.links.token_secret, given, link_id=link.id, now=now)
            return await handler(request)
        except InvalidToken:
            pass  # e.g. the member's own, expired on a page left open: a fresh one
    claims = JoinClaims(
        link_id=link.id,
        user_id=session.member.id,
        name=session.member.name,
        role=role,
        expires_at=float(int(now + members.links.config.linkapi.join_token_ttl_seconds)),
        token_id=secrets.token_urlsafe(9),
    )
    token = sign_join_token(members.links.token_secret, claims)
    query = {**{k: v for k, v in request.query.items() if k != "token"}, "token": token}
    raise web.HTTPSeeOther(
        f"{request.path}?{urlencode(query)}", headers={"Cache-Control": "no-store"}
    )
