"""Issue 16 in real Chromium against a real server process: a small calendar product
(an aiohttp app in this test) sends the member to the authorization URL; they sign in
and refuse (the product gets error=access_denied), then connect with OAuth 2.0 (PKCE);
the product mints a link for an event and refreshes its token; the member joins signed
in as host without a token, disconnects on /account; the product's next mint gets 401
and the old link still joins."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from accounts_server import AccountsServer, Member
from aiohttp import web
from browser import ARTIFACTS, Browsers, shot
from server_helpers import event

pytestmark = [pytest.mark.e2e]

DOC_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "img"


class CalendarProduct:
    """A booking product's backend: /connect, /callback, /mint (for the next event)."""

    def __init__(self, server_url: str) -> None:
        self.server = server_url
        self.client_id = ""
        self.client_secret = ""
        self.pending: dict[str, str] = {}  # state -> PKCE verifier
        self.tokens: dict[str, Any] = {}
        self.events = 0
        self.log: list[str] = []
        self.app = web.Application()
        self.app.router.add_get("/connect", self.connect)
        self.app.router.add_get("/callback", self.callback)
        self.app.router.add_get("/mint", self.mint)
        self.runner = web.AppRunner(self.app)
        self.url = ""

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    def basic(self) -> dict[str, str]:
        raw = f"{self.client_id}:{self.client_secret}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}

    async def connect(self, request: web.Request) -> web.Response:
        state = secrets.token_urlsafe(16)
        verifier = secrets.token_urlsafe(48)
        self.pending[state] = verifier
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": self.url + "/callback",
                "scope": "meetings:write meetings:read",
                "state": state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        raise web.HTTPFound(f"{self.server}/oauth/authorize?{query}")

    async def _token(self, **fields: str) -> tuple[int, dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as http,
            http.post(self.server + "/oauth/token", data=fields, headers=self.basic()) as r,
        ):
            return r.status, await r.json()

    async def _mint(self) -> tuple[int, dict[str, Any]]:
        self.events += 1
        body = {"event": event(f"booking-{self.events}", summary=f"Booking {self.events}")}
        headers = {"Authorization": f"Bearer {self.tokens['access_token']}"}
        async with (
            aiohttp.ClientSession() as http,
            http.post(self.server + "/v1/links", json=body, headers=headers) as r,
        ):
            return r.status, await r.json()

    async def callback(self, request: web.Request) -> web.Response:
        if "error" in request.query:
            return self.page(f"Not connected: {request.query['error']}")
        verifier = self.pending.pop(request.query.get("state", ""), None)
        assert verifier is not None, "unknown state"
        status, tokens = await self._token(
            grant_type="authorization_code",
            code=request.query["code"],
            redirect_uri=self.url + "/callback",
            code_verifier=verifier,
        )
        assert status == 200, tokens
        self.tokens = tokens
        status, link = await self._mint()
        assert status == 201, link
        # refresh: the new pair replaces the old one
        status, fresh = await self._token(
            grant_type="refresh_token", refresh_token=tokens["refresh_token"]
        )
        assert status == 200, fresh
        assert fresh["refresh_token"] != tokens["refresh_token"]
        self.tokens = fresh
        self.log.append("connected")
        return self.page(
            f'Connected. Your booking: <a id="meeting" href="{escape(link["join_url"])}">'
            "join the meeting</a>"
        )

    async def mint(self, request: web.Request) -> web.Response:
        status, _ = await self._mint()
        return self.page(f'<span id="mint-status">{status}</span>')

    @staticmethod
    def page(body: str) -> web.Response:
        html = f"<!doctype html><title>Bookly</title><h1>Bookly</h1><p>{body}</p>"
        return web.Response(text=html, content_type="text/html")


async def join_as_signed_in_host(page: Any, url: str) -> None:
    await page.goto(url)
    await page.get_by_text("You will join as Mia Member.").wait_for()
    assert "token=" in page.url  # minted for the signed-in member, not given by anyone
    await page.get_by_role("button", name="Join meeting").click()
    await page.get_by_role("heading", name="Host controls").wait_for()


async def test_calendar_product_connects_mints_and_is_disconnected(netns, tmp_path) -> None:
    server = AccountsServer(tmp_path)
    product = CalendarProduct(server.url)
    try:
        await product.start()
        product.client_id, product.client_secret = server.client(
            "Bookly", product.url + "/callback"
        )
        _, key = server.tenant("Acme")
        member, _ = await Member.create(server, key, "mia@example.com", "Mia Member")
        await member.close()

        async with Browsers() as b:
            page = await b.page(server.url)
            # the product sends the member to the authorization URL; they sign in...
            await page.goto(product.url + "/connect")
            await page.get_by_role("heading", name="Sign in").wait_for()
            await page.fill("#email", "mia@example.com")
            await page.fill("#password", "correct horse battery staple")
            await page.click("#signin")
            # ...and refuse first: the product hears error=access_denied
            await page.get_by_text("Bookly wants to create meeting links for you.").wait_for()
            await page.click("#deny")
            await page.get_by_text("Not connected: access_denied").wait_for()
            assert page.url.startswith(product.url + "/callback?") and "code=" not in page.url
            # ...then, signed in already, consent
            await page.goto(product.url + "/connect")
            await page.get_by_text("Bookly wants to create meeting links for you.").wait_for()
            await shot(page, "oauth-consent")
            await page.click("#allow")
            await page.get_by_text("Connected. Your booking:").wait_for()
            assert product.log == ["connected"]
            join_url = await page.get_attribute("#meeting", "href")
            assert join_url and "token=" not in join_url

            # the member opens the link signed in: host, without a token of their own
            await join_as_signed_in_host(page, join_url)
            await page.get_by_role("button", name="Leave").click()

            # /account: the personal room and the connected app; Disconnect
            await page.goto(server.url + "/account")
            room_link = await page.input_value("#room-link")
            assert room_link.startswith(server.url + "/j/")
            await page.context.grant_permissions(
                ["clipboard-read", "clipboard-write"], origin=server.url
            )
            await page.click("#copy-room")
            await page.get_by_text("Link copied.").wait_for()
            assert await page.evaluate("navigator.clipboard.readText()") == room_link
            app_row = page.locator(".connected-app", has_text="Bookly")
            await app_row.wait_for()
            await shot(page, "account")
            await app_row.get_by_role("button", name="Disconnect").click()
            await page.get_by_text("No connected apps.").wait_for()

            # the product's next mint is refused
            await page.goto(product.url + "/mint")
            assert await page.inner_text("#mint-status") == "401"

            # the link made before still joins
            await join_as_signed_in_host(page, join_url)

            # the personal room starts from the account page, as host
            await page.goto(server.url + "/account")
            await page.click("#start-room")
            await page.get_by_text("You will join as Mia Member.").wait_for()
            await page.get_by_role("button", name="Join meeting").click()
            await page.get_by_role("heading", name="Host controls").wait_for()
    finally:
        await product.runner.cleanup()
        server.stop()
    for name in ("oauth-consent", "account"):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 5_000
        if os.environ.get("UPDATE_DOC_IMAGES") == "1":  # docs/linkapi.md §17 shows them
            shutil.copy(ARTIFACTS / f"{name}.png", DOC_IMAGES / f"{name}.png")
