"""A real `mediaserver serve` process with a SQLite store for the account tests; tenants,
members and OAuth clients come from the CLI, and ``Member`` drives the pages and the
OAuth flow over HTTP like a browser would (cookies, forms, CSRF fields)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import subprocess
import sys
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import aiohttp
from server_helpers import (
    ROOT,
    clean_env,
    free_port,
    spawn_server,
    stop_process,
    wait_healthy_sync,
)

MEDIASERVER = [sys.executable, "-m", "mediaserver"]
PASSWORD = "correct horse battery staple"


class AccountsServer:
    def __init__(
        self, root: Path, *, public_url: str = "", redis_url: str = "", **accounts: Any
    ) -> None:
        """``redis_url``: state.backend = "redis" there (else SQLite in ``root``)."""
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = root / "config.toml"
        extra = "\n".join(f"{k} = {v!r}" for k, v in accounts.items())
        self.config.write_text(
            f"""
[server]
port = {self.port}
public_url = "{public_url}"
shutdown_grace_seconds = 2.0
[rtc]
ice_addresses = ["127.0.0.1"]
[state]
data_dir = "{root / "data"}"
{f'backend = "redis"{chr(10)}redis_url = "{redis_url}"' if redis_url else ""}
[logging]
format = "json"
[signalling]
join_burst_per_address = 0
[linkapi]
rate_limit_per_minute = 1000000
webhook_retry_base_seconds = 0.05
webhook_retry_max_seconds = 0.5
webhook_timeout_seconds = 2.0
allow_private_webhook_urls = true
[accounts]
{extra}
"""
        )
        self.env = clean_env()
        self.log = root / "server.log"
        self.proc = spawn_server(self.config, self.log, self.env)
        wait_healthy_sync(self.url, self.proc, self.log, 60)

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            [*MEDIASERVER, *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            check=True,
            env=self.env,
            cwd=ROOT,
            timeout=60,
        )
        return out.stdout

    def tenant(self, name: str = "Acme") -> tuple[str, str]:
        """(tenant id, API key)"""
        out = self.cli("tenant", "create", name).splitlines()
        tenant_id = re.search(r"tenant (tn_\S+)", out[0])
        assert tenant_id, out
        return tenant_id.group(1), out[-1].strip()

    def client(self, name: str, *redirect_uris: str, public: bool = False) -> tuple[str, str]:
        """(client id, secret or "")"""
        args = ["oauth-client", "create", name]
        for uri in redirect_uris:
            args += ["--redirect-uri", uri]
        if public:
            args.append("--public")
        out = self.cli(*args)
        client_id = re.search(r"client_id: (\S+)", out)
        assert client_id, out
        return client_id.group(1), (out.strip().splitlines()[-1] if not public else "")

    def stop(self) -> None:
        stop_process(self.proc)


def basic(client_id: str, secret: str) -> dict[str, str]:
    """HTTP Basic client authentication (RFC 6749 §2.3.1: form-urlencoded parts)."""
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def hidden_fields(html: str) -> dict[str, str]:
    return {
        unescape(m.group(1)): unescape(m.group(2))
        for m in re.finditer(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', html)
    }


def pkce() -> tuple[str, str]:
    """(verifier, S256 challenge)"""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def auth_params(
    client_id: str, redirect_uri: str, challenge: str, scope: str = "meetings:write meetings:read"
) -> dict[str, str]:
    """An authorization request (§4.1.1) with PKCE S256 and the state "st-123"."""
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": "st-123",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@dataclass
class Member:
    """A browser of one member: a cookie jar on the server."""

    server: AccountsServer
    email: str
    http: aiohttp.ClientSession

    @classmethod
    async def create(
        cls, server: AccountsServer, api_key: str, email: str, name: str = "Mia Member"
    ) -> tuple[Member, dict[str, Any]]:
        """Made through POST /v1/users; the password set through the one-time link."""
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        async with http.post(
            server.url + "/v1/users",
            json={"email": email, "name": name},
            headers={"Authorization": f"Bearer {api_key}"},
        ) as r:
            assert r.status == 201, await r.text()
            created = await r.json()
        member = cls(server, email, http)
        await member.set_password(created["set_password_url"], PASSWORD)
        return member, created

    async def set_password(self, url: str, password: str) -> aiohttp.ClientResponse:
        url = self.server.url + urlsplit(url).path  # also when public_url is elsewhere
        async with self.http.get(url) as r:
            assert r.status == 200, await r.text()
            fields = hidden_fields(await r.text())
        async with self.http.post(
            self.server.url + "/password/set",
            data={**fields, "password": password, "confirm": password},
            allow_redirects=False,
        ) as r:
            assert r.status == 303, await r.text()
            return r

    async def sign_in(self, password: str = PASSWORD) -> aiohttp.ClientResponse:
        async with self.http.get(self.server.url + "/signin") as r:
            fields = hidden_fields(await r.text())
        async with self.http.post(
            self.server.url + "/signin",
            data={**fields, "email": self.email, "password": password},
            allow_redirects=False,
        ) as r:
            await r.read()
            return r

    async def authorize(self, params: dict[str, str]) -> aiohttp.ClientResponse:
        async with self.http.get(
            self.server.url + "/oauth/authorize?" + urlencode(params), allow_redirects=False
        ) as r:
            await r.read()
            return r

    async def consent(
        self, params: dict[str, str], decision: str = "allow", *, csrf: bool = True
    ) -> aiohttp.ClientResponse:
        """Open the consent page and answer; the response (a redirect to the client)."""
        async with self.http.get(
            self.server.url + "/oauth/authorize?" + urlencode(params), allow_redirects=False
        ) as r:
            assert r.status == 200, (r.status, await r.text())
            fields = hidden_fields(await r.text())
        if not csrf:
            fields.pop("csrf")
        async with self.http.post(
            self.server.url + "/oauth/authorize",
            data={**fields, "decision": decision},
            allow_redirects=False,
        ) as r:
            await r.read()
            return r

    async def close(self) -> None:
        await self.http.close()


async def token_request(
    server: AccountsServer, client: tuple[str, str], **fields: str
) -> tuple[int, dict[str, Any]]:
    """POST /oauth/token with HTTP Basic client authentication (§2.3.1)."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(server.url + "/oauth/token", data=fields, headers=basic(*client)) as r,
    ):
        assert r.headers.get("Cache-Control") == "no-store"
        return r.status, await r.json()
