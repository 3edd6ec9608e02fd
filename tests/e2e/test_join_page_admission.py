"""The join page against hostile or numerous guests: the compact waiting-room bar, and
the participant key that keeps a removed browser out."""

from __future__ import annotations

import pytest
from browser import Browsers
from server_helpers import slug_of
from test_join_page import site  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.e2e]


async def test_many_waiting_guests_make_one_compact_bar(site, clients):  # noqa: F811
    link = await site.link(event_id="crowd")
    async with Browsers() as b:
        host = await b.page(site.srv.http_url)
        await host.goto(await site.token_url(link, "host", "Hana", "u-h"))
        await host.get_by_role("button", name="Join meeting").click()
        await host.get_by_role("heading", name="Host controls").wait_for()
        for i in range(5):
            c = site.srv.client(f"Guest {i}")
            clients.append(c)
            await c.connect()
            reply = await c.request(
                {"type": "join", "link": slug_of(link["join_url"]), "name": f"Guest {i}"}
            )
            assert reply["type"] == "lobby"
        bar = host.get_by_role("alertdialog", name="5 people waiting")
        await bar.wait_for()
        assert await host.locator(".knock").count() == 1  # no pop-up per guest
        await bar.get_by_role("button", name="Show list").click()
        await host.get_by_role("group", name="Guest 3 wants to join").wait_for()
        await bar.get_by_role("button", name="Admit all").click()
        await host.locator(".knock").first.wait_for(state="detached")
        for c in clients:
            await c.wait_for(lambda c=c: c.participant_id is not None)


async def test_removed_browser_stays_out_under_another_name(site, clients):  # noqa: F811
    link = await site.link(event_id="removal", guest_policy="allow")
    host = site.srv.client("Hana")
    clients.append(host)
    await host.connect()
    await host.request({"type": "join", "link": slug_of(link["host_url"]), "name": "Hana"})
    async with Browsers() as b:
        page = await b.page(site.srv.http_url)
        await page.goto(link["join_url"])
        await page.get_by_label("Your name").fill("Mallory")
        await page.get_by_role("button", name="Join meeting").click()
        await page.get_by_role("button", name="Leave").wait_for()
        await host.wait_for(lambda: len(host.participants) == 1)
        (pid,) = host.participants
        await host.request({"type": "remove_participant", "participant_id": pid})
        await page.get_by_role("heading", name="You were removed from the meeting").wait_for()
        await page.goto(link["join_url"])  # the same browser, another name
        await page.get_by_label("Your name").fill("Someone Else")
        await page.get_by_role("button", name="Join meeting").click()
        await page.get_by_role("heading", name="You were removed from the meeting").wait_for()
