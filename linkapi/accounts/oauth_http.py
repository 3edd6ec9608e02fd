"""HTTP of the authorization server: /oauth/authorize (consent page), /oauth/token,
/oauth/revoke (RFC 7009) and /.well-known/oauth-authorization-server (RFC 8414).
Errors are RFC 6749 JSON (§5.2) or redirects to the client (§4.1.2.1)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

from aiohttp import web

from .oauth import AuthorizeRequest, OAuthError, RedirectError
from .pages import consent_page, message_page
from .web_common import (
    MEMBERS,
    OAUTH,
    check_session_csrf,
    current_session,
    form,
    page,
)

__all__ = ["add_oauth_routes"]

_AUTHORIZE_FIELDS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
)
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _token_json(data: dict[str, Any], status: int = 200, **headers: str) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(data).encode(),
        content_type="application/json",
        headers={**_NO_STORE, **headers},
    )


def _oauth_error(exc: OAuthError) -> web.Response:
    headers = {"WWW-Authenticate": 'Basic realm="mediaserver"'} if exc.status == 401 else {}
    return _token_json(exc.body(), exc.status, **headers)


def _redirect(uri: str, params: dict[str, str | None]) -> web.HTTPSeeOther:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return web.HTTPSeeOther(f"{uri}{'&' if urlsplit(uri).query else '?'}{query}")


def _origin(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"


def _single(params: Any) -> None:
    """§3.1: parameters must not be included more than once."""
    for name in _AUTHORIZE_FIELDS:
        if len(params.getall(name, [])) > 1:
            raise OAuthError("invalid_request", f"{name} given more than once")


async def _authorize_request(request: web.Request, params: Any) -> AuthorizeRequest:
    _single(params)
    return await request.app[OAUTH].authorize_request(params)


def _bad_request_page(request: web.Request, exc: OAuthError) -> web.Response:
    return page(
        request,
        message_page("Cannot connect", f"This connection request is not valid: {exc.description}"),
        400,
    )


async def authorize_get(request: web.Request) -> web.Response:
    try:
        auth = await _authorize_request(request, request.query)
    except RedirectError as exc:
        raise _redirect(
            exc.redirect_uri,
            {"error": exc.error, "error_description": exc.description, "state": exc.state},
        ) from None
    except OAuthError as exc:  # unknown client or redirect URI: never redirect
        return _bad_request_page(request, exc)
    session = await current_session(request)
    if session is None:
        raise web.HTTPSeeOther("/signin?next=" + quote(request.path_qs, safe=""))
    fields = {k: request.query[k] for k in _AUTHORIZE_FIELDS if k in request.query}
    html = consent_page(session.csrf, auth.client.name, auth.scope, fields, session.member.email)
    return page(request, html, form_target=_origin(auth.redirect_uri))


async def authorize_post(request: web.Request) -> web.Response:
    fields = await form(request)
    session = await current_session(request)
    if session is None:
        return page(request, message_page("Signed out", "Sign in and try again."), 401)
    if not check_session_csrf(session, fields):
        return page(
            request,
            message_page("Form expired", "This consent was not sent by this site's page."),
            403,
        )
    params = {k: fields[k] for k in _AUTHORIZE_FIELDS if k in fields}
    try:
        auth = await request.app[OAUTH].authorize_request(params)
    except RedirectError as exc:
        raise _redirect(
            exc.redirect_uri,
            {"error": exc.error, "error_description": exc.description, "state": exc.state},
        ) from None
    except OAuthError as exc:
        return _bad_request_page(request, exc)
    if fields.get("decision") != "allow":
        raise _redirect(
            auth.redirect_uri,
            {
                "error": "access_denied",
                "error_description": "the member refused",
                "state": auth.state,
            },
        )
    code = await request.app[OAUTH].consent(auth, session.member)
    raise _redirect(auth.redirect_uri, {"code": code, "state": auth.state})


def _client_credentials(
    request: web.Request, fields: Mapping[str, str]
) -> tuple[str | None, str | None]:
    """(client_id, secret) from HTTP Basic (§2.3.1, form-urlencoded parts)
    or the body; both at once is an error."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Basic "):
        if "client_secret" in fields:
            raise OAuthError("invalid_request", "use one client authentication method")
        try:
            raw = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError("invalid_client", "malformed Basic credentials", 401) from None
        client_id, sep, secret = raw.partition(":")
        if not sep:
            raise OAuthError("invalid_client", "malformed Basic credentials", 401)
        return unquote(client_id), unquote(secret)
    return fields.get("client_id"), fields.get("client_secret")


async def _token_form(request: web.Request) -> Mapping[str, str]:
    if request.content_type != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "send application/x-www-form-urlencoded")
    data = await request.post()
    out: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(value, str) or len(value) > 4096:
            raise OAuthError("invalid_request", f"bad parameter {key[:40]!r}")
        if key in out:
            raise OAuthError("invalid_request", f"{key[:40]} given more than once")
        out[key] = value
    return out


async def token(request: web.Request) -> web.Response:
    oauth = request.app[OAUTH]
    try:
        fields = await _token_form(request)
        client_id, secret = _client_credentials(request, fields)
        if fields.get("client_id") and client_id != fields.get("client_id"):
            raise OAuthError("invalid_request", "client_id differs from the authentication")
        client = await oauth.authenticate_client(client_id, secret)
        grant_type = fields.get("grant_type")
        if grant_type == "authorization_code":
            result = await oauth.exchange_code(
                client,
                fields.get("code", ""),
                fields.get("redirect_uri"),
                fields.get("code_verifier"),
            )
        elif grant_type == "refresh_token":
            result = await oauth.refresh(
                client, fields.get("refresh_token", ""), fields.get("scope")
            )
        elif not grant_type:
            raise OAuthError("invalid_request", "grant_type required")
        else:
            raise OAuthError("unsupported_grant_type", "authorization_code or refresh_token")
    except OAuthError as exc:
        return _oauth_error(exc)
    return _token_json(result)


async def revoke(request: web.Request) -> web.Response:
    oauth = request.app[OAUTH]
    try:
        fields = await _token_form(request)
        client_id, secret = _client_credentials(request, fields)
        client = await oauth.authenticate_client(client_id, secret)
        value = fields.get("token")
        if not value:
            raise OAuthError("invalid_request", "token required")
        await oauth.revoke_token(client, value)
    except OAuthError as exc:
        return _oauth_error(exc)
    return _token_json({})


async def metadata(request: web.Request) -> web.Response:
    issuer = request.app[MEMBERS].links.public_url
    return _token_json(request.app[OAUTH].metadata(issuer))


def add_oauth_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/oauth/authorize", authorize_get)
    router.add_post("/oauth/authorize", authorize_post)
    router.add_post("/oauth/token", token)
    router.add_post("/oauth/revoke", revoke)
    router.add_get("/.well-known/oauth-authorization-server", metadata)
