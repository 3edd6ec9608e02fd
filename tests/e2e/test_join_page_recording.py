"""The join page tells people about recording: before joining, in the waiting room, and
with a persistent indicator in the meeting; a host starts and stops it from the page."""

from __future__ import annotations

import dataclasses

import pytest
from browser import Browsers, shot
from server_helpers import make_config
from sites import join_as_guest, running_site

from mediaserver.config import RecordingConfig

pytestmark = [pytest.mark.e2e]


@pytest.fixture
async def site(netns, tmp_path):
    config = dataclasses.replace(
        make_config(), recording=RecordingConfig(directory=str(tmp_path / "rec"))
    )
    async with running_site(config) as s:
        yield s


async def test_recording_indicator_prejoin_notice_and_waiting_guest(site):
    link = await site.link(recording="host")
    async with Browsers() as b:
        host = await b.page(site.srv.http_url)
        guest = await b.page(site.srv.http_url)
        await host.goto(await site.token_url(link, "host", "Hana Host", "u-host"))
        await host.get_by_text("A host may record this meeting").wait_for()
        await host.get_by_role("button", name="Join meeting").click()
        indicator = host.locator("#recording-indicator")
        start = host.get_by_role("button", name="Start recording")
        await start.wait_for()
        assert await indicator.is_hidden()
        await start.click()
        await indicator.wait_for(state="visible")
        assert await indicator.inner_text() == "Recording"
        await host.get_by_role("button", name="Stop recording").wait_for()

        # a guest is told before joining, and again while waiting in the lobby
        await guest.goto(link["join_url"])
        await guest.get_by_text(
            "This meeting is being recorded. Everyone in it is told."
        ).wait_for()
        await join_as_guest(guest, link["join_url"], "Gus Guest")
        await guest.get_by_text("The host has been told you are here.").wait_for()
        await guest.locator("#waiting-recording").wait_for(state="visible")

        knock = host.get_by_role("alertdialog", name="Gus Guest wants to join")
        await knock.get_by_role("button", name="Admit").click()
        guest_indicator = guest.locator("#recording-indicator")
        await guest_indicator.wait_for(state="visible")  # persistent in the meeting
        await shot(guest, "recording")

        await host.get_by_role("button", name="Stop recording").click()
        await guest_indicator.wait_for(state="hidden")
        await guest.get_by_text("Recording stopped.").wait_for()
        assert await indicator.is_hidden()
