"""The join page in real headless Chromium, the way people use it."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
from pathlib import Path

import pytest
from browser import ARTIFACTS, Browsers, rising, shot, stats
from media import receive_frames
from server_helpers import make_config
from sites import join_as_guest, running_site

pytestmark = [pytest.mark.e2e]

DOC_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "img"


@pytest.fixture
async def site(netns, request):
    config = make_config()
    overrides = getattr(request, "param", {})
    if overrides:
        config = dataclasses.replace(config, rooms=dataclasses.replace(config.rooms, **overrides))
    async with running_site(config) as s:
        yield s


async def test_guest_knocks_host_admits_both_see_and_hear(site, clients):
    link = await site.link()
    async with Browsers() as b:
        host = await b.page(site.srv.http_url)
        guest = await b.page(site.srv.http_url)
        await host.goto(await site.token_url(link, "host", "Hana Host", "u-host"))
        await host.get_by_text("You will join as Hana Host.").wait_for()
        await host.wait_for_function("() => document.getElementById('preview').videoWidth > 0")
        await host.wait_for_function(
            "() => document.getElementById('camera-select').options.length > 0"
        )
        await shot(host, "prejoin")
        await host.get_by_role("button", name="Join meeting").click()
        await host.get_by_role("heading", name="Host controls").wait_for()

        await join_as_guest(guest, link["join_url"], "Gus Guest")
        await guest.get_by_text("The host has been told you are here.").wait_for()
        await shot(guest, "waiting-room")
        knock = host.get_by_role("alertdialog", name="Gus Guest wants to join")
        await knock.wait_for()
        await shot(host, "host-knock")
        await knock.get_by_role("button", name="Admit").click()
        await guest.get_by_role("button", name="Leave").wait_for()

        # both see each other's video and hear each other's audio (from getStats)
        for page in (host, guest):
            await rising(page, "framesDecoded")
            await rising(page, "audioBytesReceived")
        # names in the grid, speaking panel visible to the guest too
        await guest.locator(".tile .name", has_text="Hana Host").wait_for()
        await host.locator(".tile .name", has_text="Gus Guest").wait_for()
        await guest.get_by_role("heading", name="Speaking time").wait_for()

        # a third person (an SDK bot) for the 3-person screenshot
        bot = await site.bot(link, "Bea Bot", 2)
        clients.append(bot)
        await host.locator(".tile .name", has_text="Bea Bot").wait_for()
        await rising(host, "framesDecoded")
        await host.wait_for_function(
            "() => [...document.querySelectorAll('.tile')]"
            ".every(t => t.classList.contains('has-video'))"
        )
        await asyncio.sleep(1.5)
        await shot(host, "meeting-3")
        assert await host.locator("#meeting-title").inner_text() == "Weekly sync"

    for name in ("prejoin", "waiting-room", "host-knock", "meeting-3"):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000
    if os.environ.get("UPDATE_DOC_IMAGES") == "1":  # refresh the README's pictures
        DOC_IMAGES.mkdir(exist_ok=True)
        for name in ("prejoin", "waiting-room", "host-knock", "meeting-3"):
            shutil.copy(ARTIFACTS / f"{name}.png", DOC_IMAGES / f"{name}.png")


async def test_browser_and_sdk_bot_exchange_media(site, clients):
    link = await site.link()
    async with Browsers() as b:
        page = await b.page(site.srv.http_url)
        await page.goto(await site.token_url(link, "host", "Hana", "u-h"))
        await page.get_by_role("button", name="Join meeting").click()
        await page.get_by_role("heading", name="Host controls").wait_for()
        bot = await site.bot(link, "Bot", 1)
        clients.append(bot)
        # the browser decodes the bot's video and receives its audio
        await rising(page, "framesDecoded")
        await rising(page, "audioBytesReceived")
        # the bot decodes the browser's (fake camera) video and audio
        tracks = await bot.wait_for_tracks(2, timeout=15)
        for t in tracks:
            frames = await receive_frames(t.track, 5, timeout=15)
            assert len(frames) == 5


async def _packets(receiver) -> int:
    report = await receiver.getStats()
    return sum(s.packetsReceived for s in report.values() if s.type == "inbound-rtp")


async def test_mute_all_from_host_page_stops_guest_audio_at_the_bot(site, clients):
    link = await site.link(guest_policy="allow")
    async with Browsers() as b:
        host = await b.page(site.srv.http_url)
        guest = await b.page(site.srv.http_url)
        await host.goto(await site.token_url(link, "host", "Hana", "u-h"))
        await host.get_by_role("button", name="Join meeting").click()
        await host.get_by_role("heading", name="Host controls").wait_for()
        await join_as_guest(guest, link["join_url"], "Gus")
        await guest.get_by_role("button", name="Leave").wait_for()
        bot = await site.bot(link, "Bot", 1)
        clients.append(bot)
        guest_id = await guest.evaluate("window.meeting.me.id")
        await bot.wait_for(
            lambda: any(
                t.participant_id == guest_id and t.kind == "audio" for t in bot.live_tracks()
            ),
            timeout=15,
        )
        audio = next(
            t for t in bot.live_tracks() if t.participant_id == guest_id and t.kind == "audio"
        )
        receiver = next(
            tr.receiver for tr in bot.subscriber.getTransceivers() if tr.mid == audio.mid
        )
        before = await _packets(receiver)
        await asyncio.sleep(1.5)
        flowing = await _packets(receiver)
        assert flowing > before, "the guest's audio never reached the bot"

        await host.get_by_role("button", name="Mute everyone").click()
        await guest.get_by_text("A host turned off your microphone").wait_for()
        await guest.get_by_role("button", name="Unmute").wait_for()  # the page reflects it
        await asyncio.sleep(1.0)
        stopped = await _packets(receiver)
        await asyncio.sleep(1.5)
        assert await _packets(receiver) == stopped, "muted audio still reaches the bot"


async def _screen(page, url: str, heading: str, *, name: str | None = "Ann") -> None:
    await page.goto(url)
    if name is not None and await page.get_by_label("Your name").is_visible():
        await page.get_by_label("Your name").fill(name)
    await page.get_by_role("button", name="Join meeting").click()
    await page.get_by_role("heading", name=heading).wait_for(timeout=15000)


async def test_error_screens(site):
    revoked = await site.link(event_id="revoked")
    await site.api.delete(f"/v1/links/{revoked['id']}")
    future = await site.link(event_id="future", event={"start": 120, "end": 180})
    past = await site.link(
        event_id="past", event={"start": -300, "end": -240}, grace_after_minutes=0
    )
    full = await site.link(event_id="full", max_participants=1, guest_policy="allow")
    refused = await site.link(event_id="refused")
    async with Browsers() as b:
        page = await b.page(site.srv.http_url)
        await _screen(page, revoked["join_url"], "This meeting was cancelled")
        await _screen(page, future["join_url"], "This meeting has not started yet")
        assert "You can join from" in await page.locator("#message-text").inner_text()
        await _screen(page, past["join_url"], "This meeting has ended")
        await _screen(page, f"{site.srv.http_url}/j/{'x' * 27}", "Meeting not found")

        first = await b.page(site.srv.http_url)
        await first.goto(full["join_url"])
        await first.get_by_label("Your name").fill("First")
        await first.get_by_role("button", name="Join meeting").click()
        await first.get_by_role("button", name="Leave").wait_for()
        await _screen(page, full["join_url"], "The meeting is full")

        host = await b.page(site.srv.http_url)
        await host.goto(await site.token_url(refused, "host", "Hana", "u-h"))
        await host.get_by_role("button", name="Join meeting").click()
        await host.get_by_role("heading", name="Host controls").wait_for()
        await page.goto(refused["join_url"])
        await page.get_by_label("Your name").fill("Rex")
        await page.get_by_role("button", name="Join meeting").click()
        knock = host.get_by_role("alertdialog", name="Rex wants to join")
        await knock.get_by_role("button", name="Refuse").click()
        await page.get_by_role("heading", name="You were not let in").wait_for()

        # connection lost: the server goes away mid-meeting
        await site.srv.runner.cleanup()
        await host.get_by_text("Reconnecting").first.wait_for(timeout=10000)
        await host.get_by_role("heading", name="Connection lost").wait_for(timeout=30000)


@pytest.mark.parametrize("site", [{"lobby_timeout_seconds": 1.0}], indirect=True)
async def test_lobby_timeout_screen(site):
    link = await site.link(event_id="timeout")
    async with Browsers() as b:
        page = await b.page(site.srv.http_url)
        await _screen(page, link["join_url"], "Nobody let you in")


async def test_listen_only_without_devices(site):
    link = await site.link(event_id="listen", guest_policy="allow")
    async with Browsers() as b:
        page = await b.page(site.srv.http_url, media=False)
        await page.goto(link["join_url"])
        note = page.get_by_text("you will join listen-only")
        await note.wait_for()
        await page.get_by_label("Your name").fill("Lee")
        await page.get_by_role("button", name="Join meeting").click()
        await page.get_by_role("button", name="Leave").wait_for()
        assert (await stats(page, "publisher"))["audioBytesSent"] == 0
