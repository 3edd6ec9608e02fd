"""Simulcast in real Chromium: the join page publishes three layers, a viewer's tile
size picks the layer it receives, a hidden tile receives no video."""

from __future__ import annotations

import asyncio

import pytest
from browser import Browsers, rising
from server_helpers import make_config
from sites import find_publication, running_site

pytestmark = [pytest.mark.e2e]

VIDEO_STATS = """async () => {
  const out = {frameWidth: 0, frameHeight: 0, framesDecoded: 0, freezeCount: 0, packets: 0};
  const pc = window.meeting.subscriber;
  if (!pc) return out;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") {
      out.frameWidth = s.frameWidth || 0;
      out.frameHeight = s.frameHeight || 0;
      out.framesDecoded += s.framesDecoded || 0;
      out.freezeCount += s.freezeCount || 0;
      out.packets += s.packetsReceived || 0;
    }
  });
  return out;
}"""

SET_TILE = """([w, h]) => {
  const tile = [...document.querySelectorAll('.tile')].find((t) => !t.classList.contains('self'));
  tile.style.cssText = w ? `position:fixed;left:0;top:0;width:${w}px;height:${h}px;z-index:5`
                         : 'display:none';
}"""


@pytest.fixture
async def site(netns):
    async with running_site(make_config()) as s:
        yield s


def _layers(site):
    """The simulcast layers of the only simulcast publication, low to high."""
    pub = find_publication(site, lambda pub: pub.simulcast is not None)
    return None if pub is None else pub.simulcast


async def _until(condition, timeout: float, what: str):
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        value = await condition()
        if value:
            return value
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


async def test_three_layers_tile_size_picks_layer_hidden_tile_gets_nothing(site):
    link = await site.link()
    async with Browsers() as b:
        sender = await b.page(site.srv.http_url)
        viewer = await b.page(site.srv.http_url, media=False)  # receives only
        await sender.goto(await site.token_url(link, "host", "Sam Sender", "u-sender"))
        await sender.get_by_role("button", name="Join meeting").click()
        await sender.get_by_role("button", name="Leave").wait_for()
        await viewer.goto(await site.token_url(link, "member", "Vic Viewer", "u-viewer"))
        await viewer.get_by_role("button", name="Join meeting").click()
        await viewer.get_by_role("button", name="Leave").wait_for()

        metrics = site.srv.metrics.registry

        async def three_bound():
            return metrics.get_sample_value("mediaserver_simulcast_layers_bound") == 3

        await _until(three_bound, 30, "three bound layers")
        sim = _layers(site)
        assert sim is not None

        async def sizes_known():
            return all(la.width for la in sim.layers)

        await _until(sizes_known, 20, "a keyframe on every layer")
        await rising(viewer, "framesDecoded")

        async def video():
            return await viewer.evaluate(VIDEO_STATS)

        widths = []
        for i, (w, h) in enumerate(((300, 169), (600, 338), (1150, 647))):
            await viewer.evaluate(SET_TILE, [w, h])
            want = sim.ordered()[i].width

            async def decoded_at(want=want):
                v = await video()
                return v if v["frameWidth"] == want else None

            before = await _until(decoded_at, 30, f"decoded width {want} for a {w}px tile")
            after = await _until(
                lambda before=before: _more_frames(video, before), 10, "frames still decoded"
            )
            widths.append(after["frameWidth"])
            assert after["freezeCount"] == 0, after
        print(
            "decoded widths",
            widths,
            "layers",
            [(la.rid, la.width, la.bitrate) for la in sim.layers],
        )
        assert widths == sorted(widths) and len(set(widths)) == 3, widths
        assert sim.switches_done >= 3

        # hidden tile: the server stops forwarding that video, the page receives nothing
        await viewer.evaluate(SET_TILE, [0, 0])

        async def not_fed():
            return all(sim.feeding(o) is None for o in sim.parent.forwarding.outputs)

        await _until(not_fed, 10, "the hidden tile's output to leave every layer")
        first = (await video())["packets"]
        await asyncio.sleep(1.5)
        assert (await video())["packets"] == first
        # and shown again: video comes back
        await viewer.evaluate(SET_TILE, [300, 169])
        await rising(viewer, "framesDecoded")


async def _more_frames(video, before):
    v = await video()
    return v if v["framesDecoded"] > before["framesDecoded"] + 10 else None
