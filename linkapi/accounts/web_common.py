"""What the account pages and OAuth endpoints share: app keys, the page headers (the
join page's, forms allowed to post to this server), cookies and CSRF checks."""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from aiohttp import web

from mediaserver.app import PAGE_HEADERS

from ..inputs import bad_text
from .crypto import same
from .members import Members, Session
from .oauth import OAuthServer

__all__ = [
    "MEMBERS",
    "OAUTH",
    "PRE_COOKIE",
    "SECURE",
    "SESSION_COOKIE",
    "check_form_csrf",
    "check_session_csrf",
    "current_session",
    "form",
    "page",
    "pre_csrf",
    "safe_next",
]

MEMBERS = web.AppKey("accounts_members", Members)
OAUTH = web.AppKey("accounts_oauth", OAuthServer)
SECURE = web.AppKey("accounts_secure_cookies", bool)
SESSION_COOKIE = "ms_session"
PRE_COOKIE = "ms_csrf"  # double-submit CSRF token of forms shown before signing in


def page(
    request: web.Request, html: str, status: int = 200, *, form_target: str | None = None
) -> web.Response:
    """An account page: the join page's headers; ``form-action`` allows this server (and
    ``form_target``: the consent form ends in a redirect to the client)."""
    headers = dict(PAGE_HEADERS)
    sources = "'self'" + (f" {form_target}" if form_target else "")
    headers["Content-Security-Policy"] = headers["Content-Security-Policy"].replace(
        "form-action 'none'", f"form-action {sources}"
    )
    return web.Response(
        text=html, status=status, content_type="text/html", charset="utf-8", headers=headers
    )


def set_cookie(
    request: web.Request,
    response: web.StreamResponse,
    name: str,
    value: str,
    max_age: int | None = None,
) -> None:
    response.set_cookie(
        name,
        value,
        path="/",
        httponly=True,
        samesite="Lax",  # sent on top-level navigations from a calendar product
        secure=request.app[SECURE],
        max_age=max_age,
    )


def pre_csrf(request: web.Request) -> str:
    """The double-submit token for anonymous forms: the cookie's, or a new one (the
    caller sets it on its response with ``set_pre_csrf``)."""
    value = request.cookies.get(PRE_COOKIE, "")
    if 20 <= len(value) <= 64 and value.isascii():
        return value
    return secrets.token_urlsafe(24)


def set_pre_csrf(request: web.Request, response: web.StreamResponse, token: str) -> None:
    if request.cookies.get(PRE_COOKIE) != token:
        set_cookie(request, response, PRE_COOKIE, token)


async def form(request: web.Request) -> Mapping[str, str]:
    """The posted form's text fields; 400 for repeated or unusable fields."""
    data = await request.post()
    out: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(value, str) or key in out or bad_text(key) or bad_text(value):
            raise web.HTTPBadRequest(text="bad form field\n")
        if len(value) > 4096:
            raise web.HTTPRequestEntityTooLarge(max_size=4096, actual_size=len(value))
        out[key] = value
    return out


def check_form_csrf(request: web.Request, fields: Mapping[str, str]) -> bool:
    """Anonymous forms: the field must equal the cookie (double submit)."""
    cookie = request.cookies.get(PRE_COOKIE, "")
    given = fields.get("csrf", "")
    return bool(cookie) and same(cookie, given)


def check_session_csrf(session: Session, fields: Mapping[str, str]) -> bool:
    """Signed-in forms: the field must equal the session's own token."""
    return same(session.csrf, fields.get("csrf", ""))


async def current_session(request: web.Request) -> Session | None:
    return await request.app[MEMBERS].session(request.cookies.get(SESSION_COOKIE))


def safe_next(value: str | None, default: str = "/account") -> str:
    """A local path to continue at after signing in (never another site)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    if any(ord(c) < 33 for c in value) or len(value) > 2048:
        return default
    return value
