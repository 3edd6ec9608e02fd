"""The authorization server's rules (linkapi/accounts/oauth.py) and the helpers it
relies on, against the RFCs, on an in-memory store with a clock the test moves: RFC 7636
(the Appendix B vector, verifier syntax), RFC 6749 (codes, refresh, redirect URIs,
client authentication), expiry of codes, access and refresh tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from server_helpers import make_config

from linkapi.accounts.crypto import (
    hash_password,
    hash_token,
    pkce_s256,
    valid_verifier,
    verify_password,
)
from linkapi.accounts.members import Members
from linkapi.accounts.oauth import OAuthError, OAuthServer, RedirectError, check_redirect_uri
from linkapi.accounts.web_common import safe_next
from linkapi.service import LinkService
from mediaserver.state import SqliteStore
from mediaserver.state.accounts import Member, account_store

RFC7636_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC7636_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
REDIRECT = "https://bookly.example/cb"


def test_pkce_s256_matches_rfc7636_appendix_b() -> None:
    assert pkce_s256(RFC7636_VERIFIER) == RFC7636_CHALLENGE


@pytest.mark.parametrize(
    ("verifier", "ok"),
    [
        ("a" * 42, False),
        ("a" * 43, True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("A-Z.a_z~09" * 5, True),
        ("a" * 42 + "+", False),
        ("a" * 42 + "=", False),
        ("a" * 42 + " ", False),
        ("a" * 42 + "é", False),
    ],
)
def test_verifier_syntax_rfc7636_4_1(verifier: str, ok: bool) -> None:
    assert valid_verifier(verifier) is ok


@pytest.mark.parametrize(
    ("uri", "ok"),
    [
        ("https://bookly.example/cb", True),
        ("http://127.0.0.1:9000/cb", True),
        ("http://localhost/cb", True),
        ("http://bookly.example/cb", False),  # plain http off loopback
        ("https://bookly.example/cb#frag", False),  # RFC 6749 §3.1.2
        ("bookly.example/cb", False),
        ("javascript:alert(1)", False),
    ],
)
def test_redirect_uri_registration_rule(uri: str, ok: bool) -> None:
    assert (check_redirect_uri(uri) is None) is ok


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/oauth/authorize?client_id=x", "/oauth/authorize?client_id=x"),
        ("/account", "/account"),
        ("//evil.example/x", "/account"),
        ("https://evil.example/", "/account"),
        ("/\\evil.example", "/account"),
        ("/a b", "/account"),
        (None, "/account"),
    ],
)
def test_sign_in_continues_only_on_this_site(value: str | None, expected: str) -> None:
    assert safe_next(value) == expected


def test_password_hashes_are_argon2id_and_verify() -> None:
    h = hash_password("correct horse battery staple")
    assert h.startswith("$argon2id$")
    assert verify_password("correct horse battery staple", h)
    assert not verify_password("correct horse battery stapl", h)
    assert not verify_password("anything", None)  # no account: dummy work, False
    assert not verify_password("anything", "not a hash")


@dataclass
class Clock:
    now: float = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    oauth: OAuthServer
    clock: Clock
    member: Member


@pytest.fixture
async def world() -> AsyncIterator[World]:
    store = SqliteStore(":memory:")
    await store.open()
    clock = Clock()
    config = make_config()
    links = LinkService(store, config, clock=clock)
    accounts = account_store(store)
    tenant, _ = await links.create_tenant("Acme")
    member, _ = await Members(accounts, links, config.accounts).create(tenant, "m@x.org", "M")
    yield World(OAuthServer(accounts, links, config.accounts), clock, member)
    await store.close()


def request_params(client: str, **change: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": client,
        "redirect_uri": REDIRECT,
        "scope": "meetings:write",
        "state": "s1",
        "code_challenge": RFC7636_CHALLENGE,
        "code_challenge_method": "S256",
        **change,
    }
    return {k: v for k, v in params.items() if v is not None}


async def code_for(w: World, client_id: str, **change: str | None) -> str:
    auth = await w.oauth.authorize_request(request_params(client_id, **change))
    return await w.oauth.consent(auth, w.member)


async def test_authorization_request_rules(world: World) -> None:
    client, _ = await world.oauth.register_client("B", [REDIRECT], confidential=True)
    ok = await world.oauth.authorize_request(request_params(client.id))
    assert ok.redirect_uri == REDIRECT and ok.scope == ("meetings:write",)
    # one registered URI: redirect_uri may be left out (§4.1.1), then not required later
    auto = await world.oauth.authorize_request(request_params(client.id, redirect_uri=None))
    assert auto.redirect_uri == REDIRECT and not auto.redirect_given
    for change, error in (
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"scope": "meetings:write openid"}, "invalid_scope"),
    ):
        with pytest.raises(RedirectError) as exc:
            await world.oauth.authorize_request(request_params(client.id, **change))
        assert exc.value.error == error and exc.value.state == "s1"
        assert exc.value.redirect_uri == REDIRECT
    for change in ({"client_id": "cl_nope"}, {"redirect_uri": REDIRECT + "/"}):
        with pytest.raises(OAuthError) as plain:
            await world.oauth.authorize_request(request_params(client.id, **change))
        assert not isinstance(plain.value, RedirectError)  # never redirected


async def test_client_authentication(world: World) -> None:
    conf, secret = await world.oauth.register_client("B", [REDIRECT], confidential=True)
    pub, none = await world.oauth.register_client("P", [REDIRECT], confidential=False)
    assert secret and none is None
    assert (await world.oauth.authenticate_client(conf.id, secret)).id == conf.id
    assert (await world.oauth.authenticate_client(pub.id, None)).id == pub.id
    for client_id, given in (
        (conf.id, None),
        (conf.id, secret + "x"),
        (pub.id, "a secret"),
        ("cl_nope", None),
        (None, None),
    ):
        with pytest.raises(OAuthError) as exc:
            await world.oauth.authenticate_client(client_id, given)
        assert exc.value.error == "invalid_client" and exc.value.status == 401
    stored = await world.oauth.accounts.get_client(conf.id)
    assert stored is not None and stored.secret_hash == hash_token(secret)


async def test_codes_expire_and_are_bound_to_their_client(world: World) -> None:
    client, _ = await world.oauth.register_client("B", [REDIRECT], confidential=True)
    other, _ = await world.oauth.register_client("O", [REDIRECT], confidential=True)
    code = await code_for(world, client.id)
    with pytest.raises(OAuthError, match="another client"):
        await world.oauth.exchange_code(other, code, REDIRECT, RFC7636_VERIFIER)
    code = await code_for(world, client.id)
    world.clock.now += world.oauth.config.code_ttl_seconds  # expires_at is exclusive
    with pytest.raises(OAuthError, match="expired"):
        await world.oauth.exchange_code(client, code, REDIRECT, RFC7636_VERIFIER)
    code = await code_for(world, client.id)
    world.clock.now += world.oauth.config.code_ttl_seconds - 1
    tokens = await world.oauth.exchange_code(client, code, REDIRECT, RFC7636_VERIFIER)
    assert tokens["expires_in"] == int(world.oauth.config.access_token_ttl_seconds)


async def test_access_and_refresh_tokens_expire(world: World) -> None:
    client, _ = await world.oauth.register_client("B", [REDIRECT], confidential=True)
    tokens = await world.oauth.exchange_code(
        client, await code_for(world, client.id), REDIRECT, RFC7636_VERIFIER
    )
    assert await world.oauth.access(tokens["access_token"]) is not None
    world.clock.now += world.oauth.config.access_token_ttl_seconds
    assert await world.oauth.access(tokens["access_token"]) is None
    fresh = await world.oauth.refresh(client, tokens["refresh_token"], None)
    assert await world.oauth.access(fresh["access_token"]) is not None
    world.clock.now += world.oauth.config.refresh_token_ttl_seconds
    with pytest.raises(OAuthError, match="expired"):
        await world.oauth.refresh(client, fresh["refresh_token"], None)


async def test_a_new_consent_replaces_the_connection(world: World) -> None:
    client, _ = await world.oauth.register_client("B", [REDIRECT], confidential=True)
    first = await world.oauth.exchange_code(
        client, await code_for(world, client.id), REDIRECT, RFC7636_VERIFIER
    )
    world.clock.now += 1
    second = await world.oauth.exchange_code(
        client, await code_for(world, client.id), REDIRECT, RFC7636_VERIFIER
    )
    assert await world.oauth.access(first["access_token"]) is None
    assert await world.oauth.access(second["access_token"]) is not None
    grants = await world.oauth.accounts.list_grants(world.member.id)
    assert [g.revoked_reason for g in grants] == ["replaced", None]


async def test_a_refused_refresh_leaves_the_refresh_token_usable(world: World) -> None:
    """A refresh asking for more than was granted (invalid_scope) or sent by another
    client is refused without rotating: the client can still refresh with the token,
    and that is not a reuse that ends the connection."""
    client, _ = await world.oauth.register_client("B", [REDIRECT], confidential=True)
    other, _ = await world.oauth.register_client("O", [REDIRECT], confidential=True)
    tokens = await world.oauth.exchange_code(
        client, await code_for(world, client.id), REDIRECT, RFC7636_VERIFIER
    )
    with pytest.raises(OAuthError) as exc:
        await world.oauth.refresh(client, tokens["refresh_token"], "meetings:write meetings:read")
    assert exc.value.error == "invalid_scope"
    with pytest.raises(OAuthError) as exc:
        await world.oauth.refresh(other, tokens["refresh_token"], None)
    assert exc.value.error == "invalid_grant"
    fresh = await world.oauth.refresh(client, tokens["refresh_token"], None)
    assert await world.oauth.access(fresh["access_token"]) is not None
    # the rotated token, used again, still ends the connection
    with pytest.raises(OAuthError, match="already used"):
        await world.oauth.refresh(client, tokens["refresh_token"], None)
    assert await world.oauth.access(fresh["access_token"]) is None
