"""The OAuth flow on the Redis store (a real redis-server), through a server process:
connect, mint, refresh, a refresh token replayed, revocation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from accounts_server import AccountsServer, Member, auth_params, pkce, query_of, token_request
from redis_server import RedisServer
from server_helpers import event

pytestmark = pytest.mark.integration

REDIRECT = "http://127.0.0.1:9/cb"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AccountsServer]:
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    try:
        (tmp_path / "srv").mkdir()
        srv = AccountsServer(tmp_path / "srv", redis_url=redis.url)
        try:
            yield srv
        finally:
            srv.stop()
    finally:
        redis.kill()


async def call(server: AccountsServer, method: str, path: str, token: str, body=None) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method, server.url + path, json=body, headers={"Authorization": f"Bearer {token}"}
        ) as r,
    ):
        await r.read()
        return r.status


async def test_flow_on_redis(server: AccountsServer) -> None:
    _, key = server.tenant()
    client = server.client("Bookly", REDIRECT)
    member, _ = await Member.create(server, key, "r@example.com")
    assert (await member.sign_in()).status == 303
    verifier, challenge = pkce()
    r = await member.consent(auth_params(client[0], REDIRECT, challenge))
    code = query_of(r.headers["Location"])["code"]
    status, tokens = await token_request(
        server,
        client,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT,
        code_verifier=verifier,
    )
    assert status == 200, tokens
    assert (
        await call(server, "POST", "/v1/links", tokens["access_token"], {"event": event("r1")})
        == 201
    )
    status, fresh = await token_request(
        server, client, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert status == 200
    assert await call(server, "GET", "/v1/me", fresh["access_token"]) == 200
    status, body = await token_request(
        server, client, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert status == 400 and body["error"] == "invalid_grant"
    assert await call(server, "GET", "/v1/me", fresh["access_token"]) == 401
    await member.close()
