"""Steps the account tests share: a signed-in member, an authorization request, a
connection (consent + code exchange), a call of the link API with a token, a webhook
receiver."""

from __future__ import annotations

import asyncio
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
from aiohttp import web

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


class WebhookReceiver:
    """A tenant's webhook endpoint on loopback: the bodies it received, in order."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app)
        self.url = ""

    async def _hook(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        self._arrived.set()
        return web.Response(text="ok")

    async def start(self) -> str:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self.url

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [b for b in self.bodies if b["type"] == event_type]

    async def wait_for(self, event_type: str, timeout: float = 30) -> list[dict[str, Any]]:
        """The bodies of ``event_type`` once there is at least one."""
        async with asyncio.timeout(timeout):
            while not self.of_type(event_type):
                self._arrived.clear()
                await self._arrived.wait()
        return self.of_type(event_type)

    async def close(self) -> None:
        await self._runner.cleanup()
