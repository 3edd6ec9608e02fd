"""Simulcast in real Chromium: the join page publishes three layers, a viewer's tile
size picks the layer it receives, a hidden tile receives no video."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from browser import PREFER_H264, Browsers, rising
from server_helpers import make_config, slug_of
from sites import find_publication, running_site

from mediaserver.sfu import fastpath, rxpath
from mediaserver.sfu.fastpath import NativeForwardingTrack, NativeOutputStream
from mediaserver.sfu.layerswitch import START_LOW_SECONDS

pytestmark = [pytest.mark.e2e]

VIDEO_STATS = """async () => {
  const out = {frameWidth: 0, frameHeight: 0, framesDecoded: 0, freezeCount: 0, packets: 0,
               keyFramesDecoded: 0, pliCount: 0};
  const pc = window.meeting.subscriber;
  if (!pc) return out;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") {
      out.frameWidth = s.frameWidth || 0;
      out.frameHeight = s.frameHeight || 0;
      out.framesDecoded += s.framesDecoded || 0;
      out.freezeCount += s.freezeCount || 0;
      out.packets += s.packetsReceived || 0;
      out.keyFramesDecoded += s.keyFramesDecoded || 0;
      out.pliCount += s.pliCount || 0;
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


async def join_sender_and_viewer(site, link, sender, viewer) -> None:
    """Sam Sender joins as host (publishing once joined), then Vic Viewer as a member."""
    await sender.goto(await site.token_url(link, "host", "Sam Sender", "u-sender"))
    await sender.get_by_role("button", name="Join meeting").click()
    await sender.get_by_role("button", name="Leave").wait_for()
    await viewer.goto(await site.token_url(link, "member", "Vic Viewer", "u-viewer"))
    await viewer.get_by_role("button", name="Join meeting").click()


async def _until(condition, timeout: float, what: str):
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        value = await condition()
        if value:
            return value
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_three_layers_tile_size_picks_layer_hidden_tile_gets_nothing(site, codec):
    """VP8 (the browser's choice) and H264 (the page made to prefer it): layer sizes
    come from VP8 keyframe headers / H264 SPSs."""
    link = await site.link()
    async with Browsers() as b:
        sender = await b.page(site.srv.http_url)
        viewer = await b.page(site.srv.http_url, media=False)  # receives only
        if codec == "H264":
            if not await sender.evaluate(
                "() => RTCRtpSender.getCapabilities('video').codecs"
                ".some((c) => c.mimeType === 'video/H264')"
            ):
                pytest.skip("this Chromium cannot encode H264")
            await sender.context.add_init_script(PREFER_H264)
        await join_sender_and_viewer(site, link, sender, viewer)
        await viewer.get_by_role("button", name="Leave").wait_for()
        # the tile starts small (before its first frame), as in a big grid
        await viewer.locator(".tile:not(.self)").first.wait_for(state="attached")
        await viewer.evaluate(SET_TILE, [300, 169])

        metrics = site.srv.metrics.registry

        async def three_bound():
            return metrics.get_sample_value("mediaserver_simulcast_layers_bound") == 3

        await _until(three_bound, 30, "three bound layers")
        sim = _layers(site)
        assert sim is not None
        assert sim.parent.track.codec.upper() == codec

        async def sizes_known():
            return all(la.width for la in sim.layers)

        await _until(sizes_known, 20, "a keyframe on every layer")

        async def nominal_sizes():  # Chrome scales layers down while the machine is busy
            return [la.width for la in sim.ordered()] == [320, 640, 1280]

        await _until(nominal_sizes, 30, "layers of 320, 640 and 1280 pixels")
        await rising(viewer, "framesDecoded")

        async def video():
            return await viewer.evaluate(VIDEO_STATS)

        previous = await video()
        freezes_before = previous["freezeCount"]
        widths = []
        for i, (w, h) in enumerate(((300, 169), (600, 338), (1150, 647))):
            await viewer.evaluate(SET_TILE, [w, h])

            async def decoded_at(i=i):
                # the layer's size as its latest keyframe says (Chrome may scale a layer
                # down when the machine is busy)
                v = await video()
                return v if v["frameWidth"] == sim.ordered()[i].width else None

            before = await _until(decoded_at, 30, f"the decoded width of layer {i} ({w}px tile)")
            after = await _until(
                lambda before=before: _more_frames(video, before), 10, "frames still decoded"
            )
            widths.append(before["frameWidth"])
            # A switch is clean when the new layer starts at one of its keyframes and the
            # viewer never had to ask for one (an undecodable frame makes Chrome send a
            # PLI). Freezes are reported, not asserted: Chromium counts a freeze whenever
            # rendering stalls, which a busy 2-core machine causes without any switch.
            if before["frameWidth"] != previous["frameWidth"]:
                assert before["keyFramesDecoded"] > previous["keyFramesDecoded"], before
            assert after["pliCount"] == previous["pliCount"], after
            previous = after
        print(
            "decoded widths",
            widths,
            "layers",
            [(la.rid, la.width, la.bitrate) for la in sim.layers],
            "freezes before the switches",
            freezes_before,
            "after",
            previous["freezeCount"],
        )
        # each decoded width was the server's chosen layer's at that moment (decoded_at);
        # they are 320/640/1280 unless Chrome scaled a layer down meanwhile
        assert widths == sorted(widths) and widths[0] < widths[2], widths
        assert sim.switches_done >= 3
        if fastpath.PATH == "native":  # the layers went out natively (VP8 rewrite in C)
            assert all(isinstance(la.pub.forwarding, NativeForwardingTrack) for la in sim.layers)
            assert all(isinstance(o, NativeOutputStream) for o in sim.parent.forwarding.outputs)
        # Chromium's layers came in on the direct receive path (sfu/rxpath.py)
        assert int(str(rxpath.status()["direct_rtp_packets"])) > 1000

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


def cap_remb(data: bytes, cap: int) -> bytes:
    """Rewrite every REMB in an RTCP compound packet to at most ``cap`` bits/s."""
    out = bytearray(data)
    i = 0
    while i + 4 <= len(out):
        length = (int.from_bytes(out[i + 2 : i + 4], "big") + 1) * 4
        if out[i + 1] == 206 and out[i] & 0x1F == 15 and out[i + 12 : i + 16] == b"REMB":
            exp, mantissa = (
                out[i + 17] >> 2,
                ((out[i + 17] & 3) << 16) | int.from_bytes(out[i + 18 : i + 20], "big"),
            )
            if mantissa << exp > cap:
                exp, mantissa = 0, cap
                while mantissa >= 1 << 18:
                    mantissa >>= 1
                    exp += 1
                out[i + 17] = (exp << 2) | (mantissa >> 16)
                out[i + 18 : i + 20] = (mantissa & 0xFFFF).to_bytes(2, "big")
        i += length
    return bytes(out)


def test_cap_remb_rewrites_only_larger_estimates():
    from mediaserver.sfu import rtcp

    rr = rtcp.build_rr(1, [])
    high = rtcp.build_remb(7, 2_000_000, [9])
    capped = rtcp.parse_rtcp(cap_remb(rr + high, 250_000))
    assert [type(x).__name__ for x in capped] == ["ReceiverReport", "Remb"]
    assert 240_000 <= capped[1].bitrate <= 250_000
    low = rtcp.build_remb(7, 100_000, [9])
    assert cap_remb(low, 250_000) == low


async def test_constrained_subscriber_gets_the_low_layer_the_other_keeps_the_high_one(
    site, clients
):
    """Two subscribers of one Chromium simulcast publisher: an SDK bot whose REMB is
    capped at 250 kbit/s, and a Chromium page rendering the video large."""
    link = await site.link()
    async with Browsers() as b:
        sender = await b.page(site.srv.http_url)
        viewer = await b.page(site.srv.http_url, media=False)
        await join_sender_and_viewer(site, link, sender, viewer)
        await rising(viewer, "framesDecoded")
        bot = site.srv.client("Cap Bot")
        clients.append(bot)
        await bot.connect()
        tok = await site.token(link, "member", "Cap Bot", "bot-cap")
        await bot.request({"type": "join", "link": slug_of(link["join_url"]), "token": tok})
        await bot.wait_for_tracks(2, timeout=20)
        dtls = bot.subscriber.getTransceivers()[0].receiver.transport
        original = dtls._send_rtp

        async def capped_send(data: bytes) -> None:
            await original(cap_remb(data, 250_000) if 192 <= data[1] <= 223 else data)

        dtls._send_rtp = capped_send
        await viewer.evaluate(SET_TILE, [1150, 647])

        sim = _layers(site)
        assert sim is not None
        await _until(lambda: _async(all(la.width for la in sim.layers)), 20, "layer sizes")
        room = next(iter(site.srv.rooms.rooms.values()))
        bot_id = bot.participant_id
        viewer_id = next(pid for pid, p in room.participants.items() if p.name == "Vic Viewer")

        def fed(pid):
            out = next(o for o in sim.parent.forwarding.outputs if o.subscriber_id == pid)
            layer = sim.feeding(out)
            order = [la.pub for la in sim.ordered()]
            return None if layer is None else order.index(layer)

        bot_participant = room.participants[bot_id]
        await _until(
            lambda: _async(bot_participant.downlink_estimate is not None), 20, "the bot's REMB"
        )
        await asyncio.sleep(START_LOW_SECONDS)  # past the smallest-layer start
        await _until(lambda: _async(fed(viewer_id) == 2), 40, "the top layer for the viewer")
        # the bot, which never sends video_size (1280x720 by default), is kept low by its
        # capped estimate: on the lowest layer (a timer probe may lift it for a while)
        await _until(lambda: _async(fed(bot_id) == 0 and fed(viewer_id) == 2), 40, "layers")
        # the publisher keeps sending its top layer at full size
        top = await sender.evaluate(
            """async () => {
              let w = 0;
              (await window.meeting.publisher.getStats()).forEach((s) => {
                if (s.type === "outbound-rtp" && s.kind === "video" && s.rid === "f")
                  w = s.frameWidth || 0;
              });
              return w;
            }"""
        )
        assert top == sim.ordered()[-1].width > sim.ordered()[0].width
        assert bot_participant.downlink_estimate <= 250_000


async def _async(value):
    return value


async def test_simulcast_off_publishes_one_stream_and_an_off_screen_tile_is_paused(netns):
    """`rtc.simulcast_publish = false`: the join page sends its camera as one stream. A
    remote tile scrolled out of view: its video element is paused and the server
    stops forwarding it (the page reports 0 x 0); back in view, video comes back."""
    base = make_config()
    config = dataclasses.replace(base, rtc=dataclasses.replace(base.rtc, simulcast_publish=False))
    async with running_site(config) as site, Browsers() as b:
        link = await site.link()
        sender = await b.page(site.srv.http_url)
        viewer = await b.page(site.srv.http_url, media=False)
        await join_sender_and_viewer(site, link, sender, viewer)
        await rising(viewer, "framesDecoded")
        pub = find_publication(site, lambda pub: pub.video)
        assert pub is not None and pub.simulcast is None
        assert "layers" not in pub.describe()
        encodings = await sender.evaluate(
            """async () => {
              const rids = [];
              (await window.meeting.publisher.getStats()).forEach((s) => {
                if (s.type === "outbound-rtp" && s.kind === "video") rids.push(s.rid ?? "");
              });
              return rids;
            }"""
        )
        assert encodings == [""], encodings  # one stream, no rid
        assert site.srv.metrics.registry.get_sample_value("mediaserver_simulcast_layers_bound") == 0

        (output,) = pub.forwarding.outputs  # the viewer's
        tile_video = "document.querySelector('.tile:not(.self) video')"
        await viewer.evaluate(
            f"""() => {{ const t = {tile_video}.closest('.tile');
              t.style.cssText = 'position:fixed;left:0;top:-5000px;width:320px;height:180px'; }}"""
        )
        await viewer.wait_for_function(f"() => {tile_video}.paused", timeout=10_000)
        await _until(lambda: _async(output not in pub.forwarding.outputs), 10, "forwarding stopped")
        first = (await viewer.evaluate(VIDEO_STATS))["packets"]
        await asyncio.sleep(1.5)
        assert (await viewer.evaluate(VIDEO_STATS))["packets"] == first
        # back in view: playing, forwarded and decoded again
        await viewer.evaluate(
            f"() => {{ {tile_video}.closest('.tile').style.cssText ="
            " 'position:fixed;left:0;top:0;width:320px;height:180px'; }"
        )
        await viewer.wait_for_function(f"() => !{tile_video}.paused", timeout=10_000)
        await _until(lambda: _async(output in pub.forwarding.outputs), 10, "forwarding resumed")
        await rising(viewer, "framesDecoded")
