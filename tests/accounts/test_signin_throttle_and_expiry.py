"""Sign-in throttling (per account, per address) and expired authorization codes, on a
server process of their own for each test (small limits; codes live one second)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aiohttp
import pytest
from accounts_server import (
    AccountsServer,
    Member,
    auth_params,
    pkce,
    query_of,
    token_request,
)

pytestmark = pytest.mark.integration

REDIRECT = "http://127.0.0.1:9/cb"


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AccountsServer]:
    """Small sign-in limits; codes live one second."""
    srv = AccountsServer(
        tmp_path_factory.mktemp("throttle"),
        signin_failures_per_account=3,
        signin_failures_per_address=6,
        code_ttl_seconds=1.0,
    )
    yield srv
    srv.stop()


async def test_sign_in_is_throttled_per_account_then_per_address(server) -> None:
    _, key = server.tenant()
    alice, _ = await Member.create(server, key, "alice@example.com")
    bob, _ = await Member.create(server, key, "bob@example.com")
    for _ in range(3):
        assert (await alice.sign_in("wrong password")).status == 401
    # the right password no longer helps for this account...
    throttled = await alice.sign_in()
    assert throttled.status == 429
    assert throttled.headers["Retry-After"] == "900"  # signin_window_seconds: the upper bound
    # ...while another account from the same address still signs in
    assert (await bob.sign_in()).status == 303
    # unknown accounts count for the address as well
    ghost = Member(
        server,
        "ghost@example.com",
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)),
    )
    for _ in range(3):
        assert (await ghost.sign_in("guess")).status == 401
    carol, _ = await Member.create(server, key, "carol@example.com")
    assert (await carol.sign_in()).status == 429  # 6 failures from this address
    for m in (alice, bob, ghost, carol):
        await m.close()


async def test_an_expired_code_is_refused(server) -> None:
    _, key = server.tenant("Expiry")
    client = server.client("Slowpoke", REDIRECT)
    member, _ = await Member.create(server, key, "carol@example.com")
    assert (await member.sign_in()).status == 303
    verifier, challenge = pkce()
    r = await member.consent(auth_params(client[0], REDIRECT, challenge, "meetings:write"))
    code = query_of(r.headers["Location"])["code"]
    await asyncio.sleep(1.5)  # accounts.code_ttl_seconds = 1
    status, body = await token_request(
        server,
        client,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT,
        code_verifier=verifier,
    )
    assert status == 400 and body["error"] == "invalid_grant", body
    assert "expired" in body["error_description"]
    await member.close()
