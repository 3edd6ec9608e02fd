"""Steps the account tests share: a signed-in member, an authorization request, a
connection (consent + code exchange), a call of the link API with a token."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from accounts_server import (
    AccountsServer,
    Member,
    pkce,
    query_of,
    token_request,
)
from accounts_server import auth_params as base_auth_params

REDIRECT = "http://127.0.0.1:9/callback"
OTHER_REDIRECT = "http://127.0.0.1:9/other"
_emails = iter(range(1_000_000))


def next_email() -> str:
    """A new member's address (unique on the server: one account per email)."""
    return f"m{next(_emails)}@example.com"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def new_member(server: AccountsServer, tenant: tuple[str, str]) -> Member:
    member, _ = await Member.create(server, tenant[1], next_email())
    r = await member.sign_in()
    assert r.status == 303
    return member


def auth_params(
    client: tuple[str, str], challenge: str, scope: str = "meetings:write meetings:read"
) -> dict[str, str]:
    return base_auth_params(client[0], REDIRECT, challenge, scope)


async def connect(
    server: AccountsServer,
    member: Member,
    client: tuple[str, str],
    scope: str = "meetings:write meetings:read",
) -> tuple[str, dict[str, Any]]:
    """Consent and exchange: (code, token response)."""
    verifier, challenge = pkce()
    r = await member.consent(auth_params(client, challenge, scope))
    assert r.status == 303
    q = query_of(r.headers["Location"])
    assert q["state"] == "st-123"
    status, tokens = await token_request(
        server,
        client,
        grant_type="authorization_code",
        code=q["code"],
        redirect_uri=REDIRECT,
        code_verifier=verifier,
    )
    assert status == 200, tokens
    return q["code"], tokens


async def api(
    server: AccountsServer, method: str, path: str, token: str, body: Any = None
) -> tuple[int, Any, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, server.url + path, json=body, headers=bearer(token)) as r,
    ):
        text = await r.text()
        return r.status, (json.loads(text) if text else None), r.headers
