"""Pinning on the join page in real Chromium, with rooms.last_n = 1: two silent SDK
bots, so the page's last-N is the first one; the Pin button on the second one's tile
brings its camera video to the page, and Unpin ends the pin."""

from __future__ import annotations

import pytest
from browser import Browsers
from media import COLOURS, ColourTrack, ToneTrack
from server_helpers import make_config, slug_of
from sites import running_site

pytestmark = [pytest.mark.e2e]

#: Frames the page has decoded on a participant's camera tile.
TILE_FRAMES = """(name) => {
  const v = document.querySelector(`video[aria-label="${name} video"]`);
  return v ? v.getVideoPlaybackQuality().totalVideoFrames : -1;
}"""


@pytest.fixture
async def site(netns):
    async with running_site(make_config(last_n=1)) as s:
        yield s


async def _silent_bot(site, link, name: str, colour: int):
    c = site.srv.client(name)
    await c.connect()
    tok = await site.token(link, "member", name, f"bot-{name}")
    await c.request({"type": "join", "link": slug_of(link["join_url"]), "token": tok})
    await c.publish([ToneTrack(500, amplitude=0), ColourTrack(COLOURS[colour])])
    return c


async def test_the_pin_button_brings_a_camera_outside_last_n(site, clients):
    link = await site.link()
    ann = await _silent_bot(site, link, "Ann Bot", 0)
    bob = await _silent_bot(site, link, "Bob Bot", 1)
    clients += [ann, bob]
    async with Browsers() as b:
        page = await b.page(site.srv.http_url)
        await page.goto(await site.token_url(link, "member", "Pia Page", "u-pia"))
        await page.get_by_role("button", name="Join meeting").click()
        # Ann (first to join) is the page's last-N
        await page.wait_for_function(f"() => ({TILE_FRAMES})('Ann Bot') > 10", timeout=30_000)
        assert await page.evaluate(TILE_FRAMES, "Bob Bot") <= 0
        (room,) = site.srv.rooms.rooms.values()
        me = next(p for p in room.participants.values() if p.name == "Pia Page")

        await page.get_by_role("button", name="Pin Bob Bot", exact=True).click()
        await page.get_by_role("button", name="Unpin Bob Bot", exact=True).wait_for()
        assert room.pins.of(me.id) == (bob.participant_id,)
        assert (
            await page.evaluate(
                "() => document.querySelector('.tile.pinned video').getAttribute('aria-label')"
            )
            == "Bob Bot video"
        )
        await page.wait_for_function(f"() => ({TILE_FRAMES})('Bob Bot') > 10", timeout=30_000)

        await page.get_by_role("button", name="Unpin Bob Bot", exact=True).click()
        # exact: Playwright matches role names by substring, and "Pin Bob Bot" is inside
        # "Unpin Bob Bot" (without it this wait returned before the page had the reply)
        await page.get_by_role("button", name="Pin Bob Bot", exact=True).wait_for()
        assert room.pins.of(me.id) == ()
        assert await page.evaluate("() => document.querySelectorAll('.tile.pinned').length") == 0
