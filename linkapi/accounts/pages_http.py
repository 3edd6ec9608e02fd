"""Handlers of the account pages: sign-in, sign-out, set password (one-time link),
/account (personal room, connected apps, Disconnect), password change."""

from __future__ import annotations

import time
from urllib.parse import quote

from aiohttp import web

from .members import MemberError
from .pages import (
    SCOPE_TEXT,
    AppRow,
    account_page,
    message_page,
    password_page,
    set_password_page,
    signin_page,
)
from .web_common import (
    MEMBERS,
    OAUTH,
    SESSION_COOKIE,
    check_form_csrf,
    check_session_csrf,
    current_session,
    form,
    page,
    pre_csrf,
    safe_next,
    set_cookie,
    set_pre_csrf,
)

__all__ = ["add_page_routes"]


def _refused(request: web.Request) -> web.Response:
    return page(
        request,
        message_page(
            "Form expired",
            "This form expired or was not sent by this site. "
            "Go back, reload the page and try again.",
        ),
        403,
    )


async def signin_get(request: web.Request) -> web.Response:
    if await current_session(request) is not None:
        raise web.HTTPSeeOther(safe_next(request.query.get("next")))
    token = pre_csrf(request)
    response = page(request, signin_page(token, safe_next(request.query.get("next"))))
    set_pre_csrf(request, response, token)
    return response


async def signin_post(request: web.Request) -> web.Response:
    fields = await form(request)
    if not check_form_csrf(request, fields):
        return _refused(request)
    next_path = safe_next(fields.get("next"))
    email = fields.get("email", "")
    try:
        _member, token = await request.app[MEMBERS].sign_in(
            email, fields.get("password", ""), request.remote or ""
        )
    except MemberError as exc:
        status = 429 if exc.code == "throttled" else 401
        csrf = pre_csrf(request)
        text = signin_page(csrf, next_path, email=email, error=exc.message)
        refused = page(request, text, status)
        if exc.retry_after is not None:
            refused.headers["Retry-After"] = str(exc.retry_after)
        return refused
    response = web.HTTPSeeOther(next_path)
    ttl = int(request.app[MEMBERS].config.session_ttl_seconds)
    set_cookie(request, response, SESSION_COOKIE, token, max_age=ttl)
    raise response


async def signout_post(request: web.Request) -> web.Response:
    fields = await form(request)
    session = await current_session(request)
    if session is not None:
        if not check_session_csrf(session, fields):
            return _refused(request)
        await request.app[MEMBERS].sign_out(session)
    response = web.HTTPSeeOther("/signin")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


async def set_password_get(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    try:
        member = await request.app[MEMBERS].password_link_member(token)
    except MemberError as exc:
        return page(request, message_page("Link not valid", exc.message), 404)
    csrf = pre_csrf(request)
    response = page(request, set_password_page(csrf, token, member.name))
    set_pre_csrf(request, response, csrf)
    return response


async def set_password_post(request: web.Request) -> web.Response:
    fields = await form(request)
    if not check_form_csrf(request, fields):
        return _refused(request)
    members = request.app[MEMBERS]
    token = fields.get("token", "")
    try:
        await members.set_password_with_link(
            token, fields.get("password", ""), fields.get("confirm", "")
        )
    except MemberError as exc:
        if exc.code == "invalid_link":
            return page(request, message_page("Link not valid", exc.message), 404)
        try:
            member = await members.password_link_member(token)
        except MemberError as gone:
            return page(request, message_page("Link not valid", gone.message), 404)
        html = set_password_page(pre_csrf(request), token, member.name, exc.message)
        return page(request, html, 422)
    raise web.HTTPSeeOther("/signin")


async def account_get(request: web.Request) -> web.Response:
    session = await current_session(request)
    if session is None:
        raise web.HTTPSeeOther("/signin?next=/account")
    members = request.app[MEMBERS]
    oauth = request.app[OAUTH]
    link = await members.personal_room(session.member, session.tenant)
    room_url = members.links.join_url(link)
    apps = []
    for grant in await oauth.accounts.list_grants(session.member.id):
        if grant.revoked_at is None:
            client = await oauth.accounts.get_client(grant.client_id)
            apps.append(
                AppRow(
                    grant.id,
                    client.name if client else grant.client_id,
                    " and ".join(SCOPE_TEXT.get(s, s) for s in grant.scope),
                    time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(grant.created_at)),
                )
            )
    html = account_page(
        session.csrf,
        session.member.name,
        session.member.email,
        session.tenant.name,
        room_url,
        room_url,  # signed in, the member starts their own room as host
        apps,
    )
    return page(request, html)


async def disconnect_post(request: web.Request) -> web.Response:
    fields = await form(request)
    session = await current_session(request)
    if session is None:
        raise web.HTTPSeeOther("/signin?next=/account")
    if not check_session_csrf(session, fields):
        return _refused(request)
    oauth = request.app[OAUTH]
    grant = await oauth.accounts.get_grant(fields.get("grant", ""))
    if grant is None or grant.member_id != session.member.id:
        return page(request, message_page("Not found", "No such connected app."), 404)
    await oauth.revoke_grant(grant, "disconnected_by_member")
    raise web.HTTPSeeOther("/account")


async def password_get(request: web.Request) -> web.Response:
    session = await current_session(request)
    if session is None:
        raise web.HTTPSeeOther("/signin?next=" + quote("/account/password"))
    return page(request, password_page(session.csrf))


async def password_post(request: web.Request) -> web.Response:
    fields = await form(request)
    session = await current_session(request)
    if session is None:
        raise web.HTTPSeeOther("/signin?next=" + quote("/account/password"))
    if not check_session_csrf(session, fields):
        return _refused(request)
    members = request.app[MEMBERS]
    try:
        await members.change_password(
            session,
            fields.get("current", ""),
            fields.get("password", ""),
            fields.get("confirm", ""),
        )
    except MemberError as exc:
        return page(request, password_page(session.csrf, exc.message), 422)
    # every session was ended: sign this browser in again with the new password
    response = web.HTTPSeeOther("/signin?next=/account")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


def add_page_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/signin", signin_get)
    router.add_post("/signin", signin_post)
    router.add_post("/signout", signout_post)
    router.add_get("/password/{token}", set_password_get)
    router.add_post("/password/set", set_password_post)
    router.add_get("/account", account_get)
    router.add_post("/account/disconnect", disconnect_post)
    router.add_get("/account/password", password_get)
    router.add_post("/account/password", password_post)
