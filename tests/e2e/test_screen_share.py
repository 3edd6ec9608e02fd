"""Screen sharing on the join page in real Chromium: a second video publication with
source "screen", decoded large on the other page, stopped by a host.

Headless Chromium cannot show the screen picker, so the sharer's getDisplayMedia is
replaced by an animated 1280x720 canvas stream; everything after it (transceiver,
publish with sources, forwarding, decoding, moderation) is real."""

from __future__ import annotations

import pytest
from browser import Browsers, rising
from server_helpers import make_config
from sites import find_publication, running_site

pytestmark = [pytest.mark.e2e]

FAKE_SCREEN = """
navigator.mediaDevices.getDisplayMedia = async () => {
  const c = document.createElement("canvas");
  c.width = 1280; c.height = 720;
  const g = c.getContext("2d");
  let i = 0;
  setInterval(() => {
    g.fillStyle = `hsl(${(i++ * 7) % 360}, 80%, 50%)`;
    g.fillRect(0, 0, 1280, 720);
    g.fillStyle = "#fff"; g.font = "64px sans-serif"; g.fillText(`slide ${i}`, 40, 120);
  }, 66);
  return c.captureStream(15);
};
"""

SCREEN_FRAMES = """() => {
  const v = document.querySelector('.tile.screen video');
  return v && !v.closest('.tile').hidden
    ? [v.videoWidth, v.getVideoPlaybackQuality().totalVideoFrames] : [0, 0];
}"""


@pytest.fixture
async def site(netns):
    async with running_site(make_config()) as s:
        yield s


def _screen_pub(site):
    return find_publication(site, lambda pub: pub.source == "screen")


async def test_screen_share_is_shown_large_and_a_host_stops_it(site):
    link = await site.link()
    async with Browsers() as b:
        host = await b.page(site.srv.http_url)
        sharer = await b.page(site.srv.http_url)
        await sharer.context.add_init_script(FAKE_SCREEN)
        await host.goto(await site.token_url(link, "host", "Hana Host", "u-host"))
        await host.get_by_role("button", name="Join meeting").click()
        await host.get_by_role("heading", name="Host controls").wait_for()
        await sharer.goto(await site.token_url(link, "member", "Sid Sharer", "u-sid"))
        await sharer.get_by_role("button", name="Join meeting").click()
        await rising(host, "framesDecoded")

        await sharer.get_by_role("button", name="Share screen").click()
        await sharer.get_by_role("button", name="Stop sharing").wait_for()
        await host.wait_for_function(f"() => ({SCREEN_FRAMES})()[0] === 1280", timeout=30_000)
        first = (await host.evaluate(SCREEN_FRAMES))[1]
        await host.wait_for_function(f"() => ({SCREEN_FRAMES})()[1] > {first + 10}", timeout=15_000)
        pub = _screen_pub(site)
        assert pub is not None and pub.video and not pub.muted
        assert pub.describe()["source"] == "screen"
        # shown large: the share spans the grid, wider than any camera tile
        widths = await host.evaluate(
            "() => [...document.querySelectorAll('.tile')].map((t) =>"
            " [t.classList.contains('screen'), t.getBoundingClientRect().width])"
        )
        screen_w = max(w for s, w in widths if s)
        assert all(screen_w > 2 * w for s, w in widths if not s), widths

        await host.get_by_role("button", name="Stop Sid Sharer's screen share").click()
        await sharer.get_by_text("A host stopped your screen share.").wait_for()
        await sharer.get_by_role("button", name="Share screen").wait_for()
        await host.wait_for_function("() => document.querySelector('.tile.screen').hidden")
        assert pub.muted
        frames = await host.evaluate(
            "() => document.querySelector('.tile.screen video')"
            ".getVideoPlaybackQuality().totalVideoFrames"
        )

        # sharing again reuses the publication, and the host sees it again
        await sharer.get_by_role("button", name="Share screen").click()
        await host.wait_for_function(
            f"() => ({SCREEN_FRAMES})()[1] > {frames + 10}", timeout=30_000
        )
        assert _screen_pub(site) is pub and not pub.muted
