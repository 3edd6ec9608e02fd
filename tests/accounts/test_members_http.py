"""Members over HTTP against a real server process: /v1/users, the one-time
set-password link, sessions and their cookies, the pages' CSP, sign-out, password
change, what the store keeps of secrets."""

from __future__ import annotations

import json
import sqlite3

import aiohttp
import pytest
from accounts_server import PASSWORD, Member, hidden_fields
from oauth_steps import api, connect, new_member, next_email

from mediaserver.app import PAGE_HEADERS

pytestmark = pytest.mark.integration


async def test_users_api_and_key_kinds(server, tenant, client) -> None:
    member, created = await Member.create(server, tenant[1], next_email())
    assert created["user"]["password_set"] is False
    # the link is one-time
    async with member.http.get(created["set_password_url"]) as r:
        assert r.status == 404
    status, problem, _ = await api(
        server, "POST", "/v1/users", tenant[1], {"email": member.email.upper(), "name": "Twin"}
    )
    assert status == 409, problem
    status, problem, _ = await api(
        server, "POST", "/v1/users", tenant[1], {"email": "not-an-email", "name": "X"}
    )
    assert status == 422 and problem["errors"][0]["field"] == "email"
    status, listing, _ = await api(server, "GET", "/v1/users", tenant[1])
    assert member.email in [u["email"] for u in listing["users"]]
    assert (await api(server, "GET", "/v1/me", tenant[1]))[0] == 403
    await member.close()


async def test_sessions_cookies_csp_and_sign_out(server, tenant) -> None:
    member, _ = await Member.create(server, tenant[1], next_email())
    r = await member.sign_in()
    cookie = r.cookies["ms_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/"
    value = cookie.value
    # the join page's headers; forms may post to this server only
    csp = PAGE_HEADERS["Content-Security-Policy"].replace(
        "form-action 'none'", "form-action 'self'"
    )
    async with aiohttp.ClientSession() as anonymous, anonymous.get(server.url + "/signin") as page:
        assert page.headers["Content-Security-Policy"] == csp
        pre = page.cookies["ms_csrf"]
        assert pre["httponly"] and pre["samesite"] == "Lax"
    for path in ("/account", "/account/password"):
        async with member.http.get(server.url + path, allow_redirects=False) as page:
            assert page.status == 200, path
            assert page.headers["Content-Security-Policy"] == csp, path
            assert page.headers["X-Frame-Options"] == "DENY"
    async with member.http.get(server.url + "/account") as page:
        html = await page.text()
    assert member.email in html and "/j/" in html
    fields = hidden_fields(html.split('id="signout-form"')[1])
    async with member.http.post(server.url + "/signout", data=fields, allow_redirects=False) as r:
        assert r.status == 303
    # the old cookie is dead on the server, not only deleted in the browser
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        http.cookie_jar.update_cookies({"ms_session": value})
        async with http.get(server.url + "/account", allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"].startswith("/signin")
    await member.close()


async def test_password_change(server, tenant) -> None:
    member = await new_member(server, tenant)
    # the member signed in in another browser too
    elsewhere = Member(
        server, member.email, aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    )
    assert (await elsewhere.sign_in()).status == 303
    async with member.http.get(server.url + "/account/password") as page:
        fields = hidden_fields(await page.text())
    new = "a brand new passphrase"
    async with member.http.post(
        server.url + "/account/password",
        data={**fields, "current": "wrong one!!", "password": new, "confirm": new},
    ) as r:
        assert r.status == 422
    async with member.http.post(
        server.url + "/account/password",
        data={"current": PASSWORD, "password": new, "confirm": new},
        allow_redirects=False,
    ) as r:
        assert r.status == 403  # no CSRF token
    async with member.http.post(
        server.url + "/account/password",
        data={**fields, "current": PASSWORD, "password": new, "confirm": new},
        allow_redirects=False,
    ) as r:
        assert r.status == 303
    # every session ended, the other browser's too
    async with elsewhere.http.get(server.url + "/account", allow_redirects=False) as r:
        assert r.status == 303 and r.headers["Location"].startswith("/signin")
    assert (await member.sign_in(PASSWORD)).status == 401
    assert (await member.sign_in(new)).status == 303
    await member.close()
    await elsewhere.close()


async def test_secrets_are_stored_hashed(server, tenant, client) -> None:
    member = await new_member(server, tenant)
    code, tokens = await connect(server, member, client)
    db = server.root / "data" / "mediaserver.db"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = [r[0] for r in conn.execute("SELECT data FROM accounts_members")]
        dump = "\n".join(conn.iterdump())
    finally:
        conn.close()
    hashes = [json.loads(r)["password_hash"] for r in rows]
    assert hashes and all(h.startswith("$argon2id$") for h in hashes if h)
    for secret in (code, tokens["access_token"], tokens["refresh_token"], PASSWORD, client[1]):
        assert secret not in dump
    await member.close()
