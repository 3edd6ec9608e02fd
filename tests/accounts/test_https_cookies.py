"""Behind https (server.public_url = https://…) the session and CSRF cookies are Secure;
over plain http they are not (the browser would drop them). The test client talks
plain http to the server, so it hands the CSRF cookie back itself."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from accounts_server import PASSWORD, AccountsServer, hidden_fields

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("https", [True, False])
async def test_session_cookie_is_secure_under_https(tmp_path: Path, https: bool) -> None:
    server = AccountsServer(tmp_path, public_url="https://meet.example" if https else "")
    try:
        _, key = server.tenant()
        set_cookies: list[str] = []
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            async with http.post(
                server.url + "/v1/users",
                json={"email": "sec@example.com", "name": "Sec"},
                headers={"Authorization": f"Bearer {key}"},
            ) as r:
                link = (await r.json())["set_password_url"]
            assert link.startswith("https://meet.example/" if https else server.url)

            async def form(path: str, **values: str) -> aiohttp.ClientResponse:
                async with http.get(server.url + path) as page:
                    set_cookies.extend(page.headers.getall("Set-Cookie", []))
                    fields = hidden_fields(await page.text())
                async with http.post(
                    server.url + urlsplit(form_action[path]).path,
                    data={**fields, **values},
                    headers={"Cookie": f"ms_csrf={fields['csrf']}"},
                    allow_redirects=False,
                ) as r:
                    set_cookies.extend(r.headers.getall("Set-Cookie", []))
                    return r

            path = urlsplit(link).path
            form_action = {path: "/password/set", "/signin": "/signin"}
            r = await form(path, password=PASSWORD, confirm=PASSWORD)
            assert r.status == 303
            r = await form("/signin", email="sec@example.com", password=PASSWORD)
            assert r.status == 303
        assert any(c.startswith("ms_session=") for c in set_cookies)
        assert any(c.startswith("ms_csrf=") for c in set_cookies)
        for cookie in set_cookies:
            assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
            assert ("Secure" in cookie) is https, cookie
    finally:
        server.stop()
