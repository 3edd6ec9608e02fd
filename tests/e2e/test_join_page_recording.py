"""The join page tells people about recording: before joining, in the waiting room, and
with a persistent indicator in the meeting; a host starts and stops it from the page."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
from browser import PREFER_H264, Browsers, shot
from server_helpers import make_config
from sites import join_as_guest, running_site

from mediaserver.app_keys import CONFIG
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


async def test_h264_from_chromium_is_recorded_into_matroska(site):
    from recording_helpers import decode_errors, probe

    link = await site.link(recording="always")
    async with Browsers() as b:
        host = await b.page(site.srv.http_url)
        has_h264 = await host.evaluate(
            "() => RTCRtpSender.getCapabilities('video').codecs"
            ".some((c) => c.mimeType === 'video/H264')"
        )
        if not has_h264:
            pytest.skip("this Chromium cannot encode H264")
        await host.context.add_init_script(PREFER_H264)
        await host.goto(await site.token_url(link, "host", "Hana Host", "u-host"))
        await host.get_by_role("button", name="Join meeting").click()
        await host.locator("#recording-indicator").wait_for(state="visible")
        room = site.srv.rooms.rooms[link["id"]]
        for _ in range(300):  # until video frames were written (the camera runs)
            rec = room.recording
            video = [t for t in rec.tracks.values() if t.video] if rec else []
            if video and video[0].frames >= 60:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("no H264 frames recorded")
        pub = next(p for p in room.participants.values() if p.publications)
        assert any(x.track.codec.upper() == "H264" for x in pub.publications.values())
        code, state, _ = await site.api.post(f"/v1/links/{link['id']}/recording", {"active": False})
        assert code == 200
    _, manifest, _ = await site.api.get(f"/v1/recordings/{state['recording_id']}")
    video_track = next(t for t in manifest["tracks"] if t["kind"] == "video")
    assert video_track["file"].endswith(".mkv") and video_track["codec"] == "V_MPEG4/ISO/AVC"
    path = Path(site.srv.app[CONFIG].recording_directory) / manifest["id"] / video_track["file"]
    info = probe(path)
    assert [s["codec_name"] for s in info["streams"]] == ["h264"]
    assert float(info["format"]["duration"]) >= 1.5
    assert decode_errors(path) == ""
