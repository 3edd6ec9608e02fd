"""The same meeting with Firefox ESR as a guest (Debian's firefox-esr, driven through
WebDriver BiDi by puppeteer-core: tests/e2e/firefox/guest.mjs), a Chromium host."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from browser import Browsers, rising
from server_helpers import make_config
from sites import running_site

pytestmark = [pytest.mark.e2e]

FIREFOX = "/usr/bin/firefox-esr"
DRIVER = Path(__file__).parent / "firefox"


async def _next(proc: asyncio.subprocess.Process, event: str, timeout: float) -> dict[str, Any]:
    assert proc.stdout is not None
    async with asyncio.timeout(timeout):
        while True:
            line = await proc.stdout.readline()
            assert line, "the Firefox driver exited"
            msg = json.loads(line)
            assert msg["event"] != "error", msg["message"]
            if msg["event"] == event:
                return dict(msg)


async def test_firefox_guest_and_chromium_host_see_and_hear_each_other(netns, tmp_path):
    if not os.path.exists(FIREFOX):
        pytest.skip("firefox-esr missing: run `make test` (it installs Debian's firefox-esr)")
    if not (DRIVER / "node_modules" / "puppeteer-core").is_dir() or not shutil.which("node"):
        pytest.skip("puppeteer-core missing: run `make test` (npm install in tests/e2e/firefox)")
    async with running_site(make_config()) as site, Browsers() as b:
        link = await site.link(guest_policy="allow")
        host = await b.page(site.srv.http_url)
        await host.goto(await site.token_url(link, "host", "Hana Host", "u-host"))
        await host.get_by_role("button", name="Join meeting").click()
        await host.get_by_role("heading", name="Host controls").wait_for()
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(DRIVER / "guest.mjs"),
            link["join_url"],
            "Fritz Firefox",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "FIREFOX": FIREFOX, "HOME": str(tmp_path)},
        )
        try:
            joined = await _next(proc, "joined", 60)
            await host.locator(".tile .name", has_text="Fritz Firefox").wait_for()
            # Firefox decodes the host's video and receives its audio...
            first: dict[str, Any] | None = None
            async with asyncio.timeout(45):
                while True:
                    now = await _next(proc, "stats", 10)
                    if min(now["framesDecoded"], now["audioBytesReceived"], now["videoBytesSent"]):
                        if first is None:
                            first = now
                        elif now["framesDecoded"] > first["framesDecoded"]:
                            break
            # ... and Chromium decodes Firefox's.
            await rising(host, "framesDecoded", timeout=30)
            room = next(iter(site.srv.rooms.rooms.values()))
            assert room.participants[joined["id"]].name == "Fritz Firefox"
            # Firefox publishes the join page's three simulcast layers, and the host's
            # small tile gets the smallest one
            video = next(
                p for p in room.participants[joined["id"]].publications.values() if p.video
            )
            sim = video.simulcast
            assert sim is not None
            for _ in range(60):  # polled: the layers are plain attributes
                if sim.bound == 3 and all(la.width for la in sim.layers):
                    break
                await asyncio.sleep(0.3)
            assert sim.bound == 3, [(la.rid, la.ssrc) for la in sim.layers]
            widths = [la.width for la in sim.ordered()]
            assert widths == sorted(set(widths)), widths
            print("firefox layer widths", widths)
            await host.evaluate(
                """() => { const t = [...document.querySelectorAll('.tile')]
                  .find((t) => !t.classList.contains('self'));
                  t.style.cssText = 'position:fixed;left:0;top:0;width:200px;height:112px'; }"""
            )
            await host.wait_for_function(
                """(w) => window.meeting.subscriber.getStats().then((r) => {
                  let ok = false;
                  r.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video'
                    && s.frameWidth === w) ok = true; });
                  return ok; })""",
                arg=widths[0],
                timeout=30_000,
            )
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
