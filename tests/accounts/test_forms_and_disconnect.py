"""Against a real server process: every form refuses a post without its CSRF token
(and the refused post changes nothing), the member's Disconnect on /account over HTTP
(401 for the grant's tokens, links minted before keep working, connection.revoked to
the tenant, no one else's grant), and the members and clients CLI."""

from __future__ import annotations

import base64
import json
import re
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from accounts_server import PASSWORD, AccountsServer, Member, hidden_fields, token_request
from oauth_steps import WebhookReceiver, api, connect, new_member, next_email
from server_helpers import event

pytestmark = pytest.mark.integration


def cookie_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


def without_csrf(fields: dict[str, str]) -> list[dict[str, str]]:
    """The form's fields with the CSRF token left out, and with a wrong one."""
    wrong = {**fields, "csrf": "x" * len(fields["csrf"])}
    return [{k: v for k, v in fields.items() if k != "csrf"}, wrong]


def form_fields(html: str, action: str) -> dict[str, str]:
    """The hidden fields of the form posting to ``action``."""
    start = html.index(f'action="{action}"')
    return hidden_fields(html[start : html.index("</form>", start)])


async def post(http: aiohttp.ClientSession, url: str, data: dict[str, str]) -> int:
    async with http.post(url, data=data, allow_redirects=False) as r:
        await r.read()
        return r.status


def join_claims(location: str) -> dict[str, Any]:
    token = location.split("token=")[1].split("&")[0]
    return dict(json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==")))


async def test_every_form_refuses_a_post_without_its_csrf_token(server, tenant, client) -> None:
    email = next_email()
    status, created, _ = await api(
        server, "POST", "/v1/users", tenant[1], {"email": email, "name": "Fay Form"}
    )
    assert status == 201, created
    http = cookie_session()
    member = Member(server, email, http)
    # before signing in (double-submit cookie): the set-password form...
    async with http.get(server.url + urlsplit(created["set_password_url"]).path) as page:
        fields = {**hidden_fields(await page.text()), "password": PASSWORD, "confirm": PASSWORD}
    for data in without_csrf(fields):
        assert await post(http, server.url + "/password/set", data) == 403
    # ...a page of another site knows the field but not the cookie
    async with cookie_session() as elsewhere:
        assert await post(elsewhere, server.url + "/password/set", fields) == 403
    assert await post(http, server.url + "/password/set", fields) == 303  # the link still works
    # ...and the sign-in form
    async with http.get(server.url + "/signin") as page:
        fields = {**hidden_fields(await page.text()), "email": email, "password": PASSWORD}
    for data in without_csrf(fields):
        assert await post(http, server.url + "/signin", data) == 403
    async with cookie_session() as elsewhere:
        assert await post(elsewhere, server.url + "/signin", fields) == 403
    assert "ms_session" not in {c.key for c in http.cookie_jar}
    assert await post(http, server.url + "/signin", fields) == 303

    # signed in (the session's token): disconnect, sign out, password change, consent
    _, tokens = await connect(server, member, client)
    async with http.get(server.url + "/account") as page:
        html = await page.text()
    new = "another long passphrase"
    forms = {
        "/account/disconnect": form_fields(html, "/account/disconnect"),
        "/signout": form_fields(html, "/signout"),
        "/account/password": {
            **form_fields(html, "/signout"),  # the same session token
            "current": PASSWORD,
            "password": new,
            "confirm": new,
        },
    }
    for path, fields in forms.items():
        for data in without_csrf(fields):
            assert await post(http, server.url + path, data) == 403, (path, data)
    # nothing happened: still signed in, still connected, the password unchanged
    async with http.get(server.url + "/account", allow_redirects=False) as page:
        assert page.status == 200 and 'class="connected-app"' in await page.text()
    assert (await api(server, "GET", "/v1/me", tokens["access_token"]))[0] == 200
    async with cookie_session() as other:
        assert (await Member(server, email, other).sign_in(PASSWORD)).status == 303
    await member.close()


async def test_disconnect_on_the_account_page(server: AccountsServer, client) -> None:
    hooks = WebhookReceiver()
    await hooks.start()
    tenant = server.tenant("Hooli")
    status, _, _ = await api(
        server,
        "POST",
        "/v1/webhooks",
        tenant[1],
        {"url": hooks.url, "events": ["connection.revoked"]},
    )
    assert status == 201
    member = await new_member(server, tenant)
    other = await new_member(server, tenant)
    _, tokens = await connect(server, member, client)
    _, others_tokens = await connect(server, other, client)
    status, link, _ = await api(
        server, "POST", "/v1/links", tokens["access_token"], {"event": event("dc-1")}
    )
    assert status == 201, link
    status, me, _ = await api(server, "GET", "/v1/me", tokens["access_token"])
    grant_id = me["connection"]["id"]

    # another member cannot disconnect it, even with a valid form of their own
    async with other.http.get(server.url + "/account") as page:
        fields = form_fields(await page.text(), "/account/disconnect")
    assert (
        await post(other.http, server.url + "/account/disconnect", {**fields, "grant": grant_id})
        == 404
    )
    assert (await api(server, "GET", "/v1/me", tokens["access_token"]))[0] == 200

    async with member.http.get(server.url + "/account") as page:
        html = await page.text()
    fields = form_fields(html, "/account/disconnect")
    assert fields["grant"] == grant_id and "Bookly" in html
    async with member.http.post(
        server.url + "/account/disconnect", data=fields, allow_redirects=False
    ) as r:
        assert r.status == 303 and r.headers["Location"] == "/account"
    async with member.http.get(server.url + "/account") as page:
        assert 'id="apps">No connected apps.' in await page.text()

    # every later call with that grant: 401 on /v1, invalid_grant at the token endpoint
    status, _, headers = await api(
        server, "POST", "/v1/links", tokens["access_token"], {"event": event("dc-2")}
    )
    assert status == 401 and 'error="invalid_token"' in headers["WWW-Authenticate"]
    assert (await api(server, "GET", "/v1/me", tokens["access_token"]))[0] == 401
    status, body = await token_request(
        server, client, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert status == 400 and body["error"] == "invalid_grant", body
    # the other member's connection is untouched
    assert (await api(server, "GET", "/v1/me", others_tokens["access_token"]))[0] == 200

    # the link minted before keeps working: active, the member still host on it signed in
    status, still, _ = await api(server, "GET", f"/v1/links/{link['id']}", tenant[1])
    assert status == 200 and still["status"] == "active"
    slug = link["join_url"].split("/j/")[1]
    async with member.http.get(f"{server.url}/j/{slug}", allow_redirects=False) as r:
        assert r.status == 303
        assert join_claims(r.headers["Location"])["role"] == "host"
    async with other.http.get(f"{server.url}/j/{slug}", allow_redirects=False) as r:
        assert r.status == 303
        assert join_claims(r.headers["Location"])["role"] == "member"
    async with (
        aiohttp.ClientSession() as guest,
        guest.get(f"{server.url}/j/{slug}", allow_redirects=False) as r,
    ):
        assert r.status == 200  # not signed in: the join page as for any guest

    # the tenant is told
    revoked = await hooks.wait_for("connection.revoked")
    connection = revoked[0]["data"]["connection"]
    assert connection["id"] == grant_id and connection["reason"] == "disconnected_by_member"
    assert connection["member_id"] == me["user"]["id"] and connection["client_name"] == "Bookly"
    assert len(revoked) == 1 and revoked[0]["tenant_id"] == tenant[0]
    for m in (member, other):
        await m.close()
    await hooks.close()


async def test_members_and_clients_from_the_cli(server: AccountsServer, tenant) -> None:
    email = next_email()
    out = server.cli("user", "create", tenant[0], email, "--name", "Cli Member")
    assert re.search(rf"member usr_\S+ <{re.escape(email)}> created", out), out
    link = out.strip().splitlines()[-1]
    assert "/password/msp_" in link
    async with cookie_session() as http:
        member = Member(server, email, http)
        await member.set_password(link, PASSWORD)
        assert (await member.sign_in()).status == 303
    assert re.search(
        rf"usr_\S+\t{re.escape(email)}\tCli Member\tpassword set",
        server.cli("user", "list", tenant[0]),
    )
    client_id, secret = server.client("Listed", "https://listed.example/cb")
    assert secret.startswith("mscs_")
    public_id, _ = server.client("Pocket Listed", "http://127.0.0.1:9/cb", public=True)
    listing = server.cli("oauth-client", "list")
    assert f"{client_id}\tListed\tconfidential\thttps://listed.example/cb" in listing
    assert f"{public_id}\tPocket Listed\tpublic\thttp://127.0.0.1:9/cb" in listing
    assert secret not in listing
