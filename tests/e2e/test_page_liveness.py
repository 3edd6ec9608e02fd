"""The join page notices a WebSocket that stays open but no longer answers (the node
holding it paused or cut off) by its ping, and reconnects."""

from __future__ import annotations

import pytest
from api_client import ApiClient
from browser import Browsers
from server_helpers import event, make_config, start_server

from mediaserver.app_keys import LINKS, SESSIONS

pytestmark = [pytest.mark.e2e]


async def test_page_reconnects_when_its_socket_stops_answering(netns):
    srv = await start_server(make_config())
    _, key = await srv.app[LINKS].create_tenant("Acme")
    api = ApiClient(srv.http_url, key)
    try:
        status, link, _ = await api.post("/v1/links", {"event": event("silent")})
        assert status == 201, link
        _, tok, _ = await api.post(
            f"/v1/links/{link['id']}/join-tokens",
            {"user_id": "u-h", "name": "Hana", "role": "host"},
        )
        async with Browsers() as b:
            page = await b.page(srv.http_url)
            await page.goto(tok["join_url"])
            await page.get_by_role("button", name="Join meeting").click()
            await page.get_by_role("heading", name="Host controls").wait_for()
            # the server stops reading the page's socket, and its own WebSocket heartbeat
            # (which would close the socket after 30 s): open, but silent
            for ws in list(srv.app[SESSIONS]):
                ws._cancel_heartbeat()
                ws._req.transport.pause_reading()
            # a ping every 10 s, 5 s to answer: then the page drops it and reconnects
            await page.get_by_text("Reconnected").wait_for(timeout=40000)
            await page.get_by_role("heading", name="Host controls").wait_for()
            assert await page.evaluate("window.meeting.reconnects") == 1
    finally:
        await api.close()
        await srv.runner.cleanup()
