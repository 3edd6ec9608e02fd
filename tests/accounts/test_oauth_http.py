"""The OAuth 2.0 authorization server against a real server process: the flow, and
every refusal of issue 16 as an HTTP test (RFC 6749, 7636, 7009, 8414, 6750 rules)."""

from __future__ import annotations

import base64
import json

import aiohttp
import pytest
from accounts_server import (
    PASSWORD,
    AccountsServer,
    Member,
    basic,
    hidden_fields,
    pkce,
    query_of,
    token_request,
)
from oauth_steps import (
    OTHER_REDIRECT,
    REDIRECT,
    WebhookReceiver,
    api,
    auth_params,
    connect,
    new_member,
    next_email,
)
from server_helpers import event

from mediaserver.app import PAGE_HEADERS

pytestmark = pytest.mark.integration


async def test_flow_mint_refresh_me(server, tenant, client) -> None:
    member = await new_member(server, tenant)
    _, tokens = await connect(server, member, client)
    assert tokens["token_type"] == "Bearer" and tokens["scope"] == "meetings:write meetings:read"
    status, link, _ = await api(
        server, "POST", "/v1/links", tokens["access_token"], {"event": event("bk-1")}
    )
    assert status == 201, link
    status, me, _ = await api(server, "GET", "/v1/me", tokens["access_token"])
    assert status == 200, me
    assert me["user"]["email"] == member.email
    assert me["connection"]["client_name"] == "Bookly"
    assert me["personal_room"]["kind"] == "personal"
    assert me["personal_room"]["user_id"] == me["user"]["id"]
    assert link["member_id"] == me["user"]["id"]
    status, seen_by_tenant, _ = await api(server, "GET", f"/v1/links/{link['id']}", tenant[1])
    assert status == 200 and seen_by_tenant["member_id"] == me["user"]["id"]
    # the member's own link, by id
    status, got, _ = await api(server, "GET", f"/v1/links/{link['id']}", tokens["access_token"])
    assert status == 200 and got["id"] == link["id"]
    # rotation: a new refresh token each time, the old access token stays valid until expiry
    status, fresh = await token_request(
        server, client, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert status == 200, fresh
    assert fresh["refresh_token"] != tokens["refresh_token"]
    status, _, _ = await api(
        server, "POST", "/v1/links", fresh["access_token"], {"event": event("bk-2")}
    )
    assert status == 201
    await member.close()


async def test_refresh_token_used_twice_revokes_the_grant(server, tenant, client) -> None:
    member = await new_member(server, tenant)
    _, tokens = await connect(server, member, client)
    status, fresh = await token_request(
        server, client, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert status == 200
    status, again = await token_request(
        server, client, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert status == 400 and again["error"] == "invalid_grant", again
    # the whole connection is gone: the rotated tokens too
    status, problem, headers = await api(server, "GET", "/v1/me", fresh["access_token"])
    assert status == 401, problem
    assert 'error="invalid_token"' in headers["WWW-Authenticate"]
    status, body = await token_request(
        server, client, grant_type="refresh_token", refresh_token=fresh["refresh_token"]
    )
    assert status == 400 and body["error"] == "invalid_grant"
    await member.close()


async def test_wrong_pkce_verifier_is_invalid_grant(server, tenant, client) -> None:
    member = await new_member(server, tenant)
    _verifier, challenge = pkce()
    r = await member.consent(auth_params(client, challenge))
    code = query_of(r.headers["Location"])["code"]
    other, _ = pkce()
    status, body = await token_request(
        server,
        client,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT,
        code_verifier=other,
    )
    assert status == 400 and body["error"] == "invalid_grant", body
    assert "code_verifier" in body["error_description"]
    # no verifier at all: PKCE is required
    status, body = await token_request(
        server, client, grant_type="authorization_code", code=code, redirect_uri=REDIRECT
    )
    assert status == 400 and body["error"] == "invalid_request", body
    await member.close()


async def test_pkce_s256_is_required_at_authorization(server, tenant, client) -> None:
    member = await new_member(server, tenant)
    verifier, challenge = pkce()
    for change in (
        {"code_challenge": None},
        {"code_challenge_method": "plain", "code_challenge": verifier},
        {"code_challenge_method": None},
    ):
        params = {k: v for k, v in {**auth_params(client, challenge), **change}.items() if v}
        r = await member.authorize(params)
        assert r.status == 303, change
        q = query_of(r.headers["Location"])
        assert r.headers["Location"].startswith(REDIRECT)
        assert q["error"] == "invalid_request" and q["state"] == "st-123", q
    await member.close()


async def test_redirect_uri_mismatch(server, tenant, client) -> None:
    member = await new_member(server, tenant)
    verifier, challenge = pkce()
    # not registered (even a prefix or a changed query): a page, never a redirect there
    for uri in (
        "http://127.0.0.1:9/callback/x",
        "http://127.0.0.1:9/callback?a=1",
        "https://evil.example/callback",
    ):
        r = await member.authorize({**auth_params(client, challenge), "redirect_uri": uri})
        assert r.status == 400 and "Location" not in r.headers, uri
    # the token request must repeat the authorization request's redirect_uri
    r = await member.consent(auth_params(client, challenge))
    code = query_of(r.headers["Location"])["code"]
    status, body = await token_request(
        server,
        client,
        grant_type="authorization_code",
        code=code,
        redirect_uri=OTHER_REDIRECT,
        code_verifier=verifier,
    )
    assert status == 400 and body["error"] == "invalid_grant", body
    assert "redirect_uri" in body["error_description"]
    await member.close()


async def test_code_reused_revokes_the_tokens_issued_from_it(server, tenant, client) -> None:
    member = await new_member(server, tenant)
    verifier, challenge = pkce()
    r = await member.consent(auth_params(client, challenge))
    code = query_of(r.headers["Location"])["code"]
    fields = dict(
        grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=verifier
    )
    status, tokens = await token_request(server, client, **fields)
    assert status == 200
    assert (await api(server, "GET", "/v1/me", tokens["access_token"]))[0] == 200
    status, body = await token_request(server, client, **fields)
    assert status == 400 and body["error"] == "invalid_grant", body
    assert (await api(server, "GET", "/v1/me", tokens["access_token"]))[0] == 401
    status, body = await token_request(
        server, client, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert status == 400 and body["error"] == "invalid_grant"
    await member.close()


async def test_a_scope_not_granted(server, tenant, client) -> None:
    member = await new_member(server, tenant)
    _, tokens = await connect(server, member, client, scope="meetings:read")
    assert tokens["scope"] == "meetings:read"
    status, problem, headers = await api(
        server, "POST", "/v1/links", tokens["access_token"], {"event": event("no")}
    )
    assert status == 403, problem
    assert 'error="insufficient_scope"' in headers["WWW-Authenticate"]
    assert 'scope="meetings:write"' in headers["WWW-Authenticate"]
    assert int(headers["RateLimit-Remaining"]) >= 0  # authenticated: counted, told
    # a refresh cannot widen the grant
    status, body = await token_request(
        server,
        client,
        grant_type="refresh_token",
        refresh_token=tokens["refresh_token"],
        scope="meetings:write",
    )
    assert status == 400 and body["error"] == "invalid_scope", body
    # ...and the refused request did not use up the refresh token
    status, body = await token_request(
        server, client, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert status == 200 and body["scope"] == "meetings:read", body
    # an unknown scope at authorization
    _, challenge = pkce()
    r = await member.authorize(auth_params(client, challenge, "meetings:write admin"))
    assert query_of(r.headers["Location"])["error"] == "invalid_scope"
    # tenant-key operations are not for member tokens
    for method, path in (("GET", "/v1/links"), ("POST", "/v1/webhooks"), ("GET", "/v1/users")):
        status, _, headers = await api(server, method, path, tokens["access_token"], {})
        assert status == 403, (method, path)
        assert "RateLimit-Limit" in headers, (method, path)
    await member.close()


async def test_another_tenants_link(server, tenant, client) -> None:
    member = await new_member(server, tenant)
    _, tokens = await connect(server, member, client)
    _, other_key = server.tenant("Globex")
    status, foreign, _ = await api(server, "POST", "/v1/links", other_key, {"event": event("g")})
    assert status == 201
    status, _, _ = await api(server, "GET", f"/v1/links/{foreign['id']}", tokens["access_token"])
    assert status == 404
    # the tenant's own links minted with its key are not the member's either
    status, own, _ = await api(server, "POST", "/v1/links", tenant[1], {"event": event("t")})
    status, _, _ = await api(server, "GET", f"/v1/links/{own['id']}", tokens["access_token"])
    assert status == 404
    # signed in, another tenant's link is opened as a guest (no token is minted)
    slug = foreign["join_url"].split("/j/")[1]
    async with member.http.get(f"{server.url}/j/{slug}", allow_redirects=False) as r:
        assert r.status == 200
    slug = own["join_url"].split("/j/")[1]
    async with member.http.get(f"{server.url}/j/{slug}", allow_redirects=False) as r:
        assert r.status == 303 and "token=" in r.headers["Location"]
        token = r.headers["Location"].split("token=")[1]
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["role"] == "member" and claims["name"] == "Mia Member"
    # that token is used as it is; one that no longer verifies is replaced
    async with member.http.get(
        f"{server.url}/j/{slug}", params={"token": token}, allow_redirects=False
    ) as r:
        assert r.status == 200
    async with member.http.get(
        f"{server.url}/j/{slug}", params={"token": token[:-4] + "AAAA"}, allow_redirects=False
    ) as r:
        assert r.status == 303
        assert (
            r.headers["Location"].count("token=") == 1 and token[:-4] not in r.headers["Location"]
        )
    # the host URL keeps making its holder host: no member token replaces it
    host_slug = own["host_url"].split("/j/")[1]
    async with member.http.get(f"{server.url}/j/{host_slug}", allow_redirects=False) as r:
        assert r.status == 200
    await member.close()


async def test_consent_without_the_csrf_token(server, tenant, client) -> None:
    member = await new_member(server, tenant)
    _, challenge = pkce()
    r = await member.consent(auth_params(client, challenge), csrf=False)
    assert r.status == 403 and "Location" not in r.headers
    # a wrong one is no better
    async with member.http.get(
        server.url + "/oauth/authorize", params=auth_params(client, challenge)
    ) as page:
        fields = hidden_fields(await page.text())
        # the join page's CSP; the form may post here and end at the client's origin only
        assert page.headers["Content-Security-Policy"] == PAGE_HEADERS[
            "Content-Security-Policy"
        ].replace("form-action 'none'", "form-action 'self' http://127.0.0.1:9")
        assert page.headers["X-Frame-Options"] == "DENY"
    async with member.http.post(
        server.url + "/oauth/authorize",
        data={**fields, "csrf": "x" * len(fields["csrf"]), "decision": "allow"},
        allow_redirects=False,
    ) as r:
        assert r.status == 403 and "Location" not in r.headers
    await member.close()


async def test_access_denied_when_the_member_refuses(server, tenant, client) -> None:
    member = await new_member(server, tenant)
    _, challenge = pkce()
    r = await member.consent(auth_params(client, challenge), decision="deny")
    assert r.status == 303
    assert r.headers["Location"].startswith(REDIRECT + "?")
    q = query_of(r.headers["Location"])
    assert q["error"] == "access_denied" and q["state"] == "st-123" and "code" not in q
    await member.close()


async def test_not_signed_in_goes_to_sign_in_and_back(server, tenant, client) -> None:
    member, _ = await Member.create(server, tenant[1], next_email())
    _, challenge = pkce()
    r = await member.authorize(auth_params(client, challenge))
    assert r.status == 303 and r.headers["Location"].startswith("/signin?next=")
    async with member.http.get(server.url + r.headers["Location"]) as page:
        fields = hidden_fields(await page.text())
    assert fields["next"].startswith("/oauth/authorize?")
    async with member.http.post(
        server.url + "/signin",
        data={**fields, "email": member.email, "password": PASSWORD},
        allow_redirects=False,
    ) as r:
        assert r.status == 303 and r.headers["Location"] == fields["next"]
    await member.close()


async def test_revocation_rfc7009_ends_the_grant_and_tells_the_tenant(
    server, tenant, client
) -> None:
    hooks = WebhookReceiver()
    await hooks.start()
    tenant_id, key = server.tenant("Initech")
    status, _, _ = await api(
        server,
        "POST",
        "/v1/webhooks",
        key,
        {"url": hooks.url, "events": ["connection.revoked"]},
    )
    assert status == 201
    member = await new_member(server, (tenant_id, key))
    _, tokens = await connect(server, member, client)
    status, link, _ = await api(
        server, "POST", "/v1/links", tokens["access_token"], {"event": event("rv")}
    )
    assert status == 201
    # unknown tokens are fine (§2.2); another client's revocation does nothing
    other = server.client("Other", REDIRECT)
    async with aiohttp.ClientSession() as http:
        for who, token in ((client, "msr_unknown"), (other, tokens["refresh_token"])):
            async with http.post(
                server.url + "/oauth/revoke", data={"token": token}, headers=basic(*who)
            ) as r:
                assert r.status == 200
        assert (await api(server, "GET", "/v1/me", tokens["access_token"]))[0] == 200
        async with http.post(
            server.url + "/oauth/revoke",
            data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
            headers=basic(*client),
        ) as r:
            assert r.status == 200
        # a wrong client secret is invalid_client
        async with http.post(
            server.url + "/oauth/revoke", data={"token": "x"}, headers=basic(client[0], "wrong")
        ) as r:
            assert r.status == 401 and (await r.json())["error"] == "invalid_client"
    status, _, _headers = await api(
        server, "POST", "/v1/links", tokens["access_token"], {"event": event("rv2")}
    )
    assert status == 401
    # the link minted before is still there and active
    status, still, _ = await api(server, "GET", f"/v1/links/{link['id']}", key)
    assert status == 200 and still["status"] == "active"
    revoked = await hooks.wait_for("connection.revoked")
    assert len(revoked) == 1
    assert revoked[0]["data"]["connection"]["reason"] == "revoked_by_client"
    assert revoked[0]["data"]["connection"]["client_name"] == "Bookly"
    await member.close()
    await hooks.close()


async def test_metadata_rfc8414(server) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(server.url + "/.well-known/oauth-authorization-server") as r,
    ):
        assert r.status == 200
        meta = await r.json()
    assert meta["issuer"] == server.url
    assert meta["authorization_endpoint"] == server.url + "/oauth/authorize"
    assert meta["token_endpoint"] == server.url + "/oauth/token"
    assert meta["revocation_endpoint"] == server.url + "/oauth/revoke"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["response_types_supported"] == ["code"]
    assert set(meta["scopes_supported"]) == {"meetings:write", "meetings:read"}


async def test_token_endpoint_errors(server, tenant, client) -> None:
    async with aiohttp.ClientSession() as http:
        # no client authentication
        async with http.post(
            server.url + "/oauth/token", data={"grant_type": "authorization_code", "code": "x"}
        ) as r:
            assert r.status == 401 and (await r.json())["error"] == "invalid_client"
        async with http.post(
            server.url + "/oauth/token", data={"grant_type": "password"}, headers=basic(*client)
        ) as r:
            assert r.status == 400 and (await r.json())["error"] == "unsupported_grant_type"
        async with http.post(
            server.url + "/oauth/token", json={"grant_type": "x"}, headers=basic(*client)
        ) as r:
            assert r.status == 400 and (await r.json())["error"] == "invalid_request"


async def post_token(server: AccountsServer, headers: dict[str, str], **fields: str):
    async with (
        aiohttp.ClientSession() as http,
        http.post(server.url + "/oauth/token", data=fields, headers=headers) as r,
    ):
        return r.status, await r.json()


async def test_public_client_and_secret_in_the_body(server, tenant, client) -> None:
    """§2.3.1: a secret in the body (client_secret_post) works, Basic and body together
    do not; a public client sends only its client_id (PKCE protects its code)."""
    public = server.client("Pocket", REDIRECT, public=True)
    member = await new_member(server, tenant)
    for who in (public, client):
        verifier, challenge = pkce()
        r = await member.consent(auth_params(who, challenge))
        code = query_of(r.headers["Location"])["code"]
        fields = dict(
            grant_type="authorization_code",
            code=code,
            redirect_uri=REDIRECT,
            code_verifier=verifier,
            client_id=who[0],
        )
        if who is client:
            status, body = await post_token(
                server, basic(*client), **fields, client_secret=client[1]
            )
            assert status == 400 and body["error"] == "invalid_request", body
            fields["client_secret"] = client[1]
        status, body = await post_token(server, {}, **fields)
        assert status == 200, body
    # a public client cannot present a secret it does not have
    status, body = await post_token(
        server,
        {},
        grant_type="refresh_token",
        refresh_token="msr_x",
        client_id=public[0],
        client_secret="guess",
    )
    assert status == 401 and body["error"] == "invalid_client"
    await member.close()
