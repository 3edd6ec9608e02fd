"""Playwright helpers for the join page."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_ARGS = [
    "--allow-loopback-in-peer-connection",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class Browsers:
    """One Chromium, many contexts (one per person)."""

    def __init__(self) -> None:
        self._pw: Any = None
        self.browser: Browser | None = None

    async def __aenter__(self) -> Browsers:
        self._pw = await async_playwright().start()
        self.browser = await self._pw.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.browser is not None:
            await self.browser.close()
        await self._pw.stop()

    async def page(self, origin: str, *, media: bool = True) -> Page:
        """A new person. ``media=False``: camera and microphone are refused."""
        assert self.browser is not None
        context = await self.browser.new_context(viewport={"width": 1200, "height": 760})
        await context.grant_permissions(["camera", "microphone"], origin=origin)
        if not media:
            await context.add_init_script(
                "navigator.mediaDevices.getUserMedia = () =>"
                " Promise.reject(new DOMException('denied', 'NotAllowedError'));"
            )
        page = await context.new_page()
        page.on("pageerror", lambda exc: print("page error:", exc))
        return page


async def shot(page: Page, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


async def stats(page: Page, which: str = "subscriber") -> dict[str, float]:
    """Totals from the page's peer connection stats: frames decoded, audio bytes..."""
    return await page.evaluate(
        """async (which) => {
          const pc = window.meeting[which];
          const out = {framesDecoded: 0, audioBytesReceived: 0, videoBytesSent: 0,
                       audioBytesSent: 0, videoPacketsReceived: 0};
          if (!pc) return out;
          const report = await pc.getStats();
          report.forEach((s) => {
            if (s.type === "inbound-rtp" && s.kind === "video") {
              out.framesDecoded += s.framesDecoded || 0;
              out.videoPacketsReceived += s.packetsReceived || 0;
            }
            const inb = s.type === "inbound-rtp", outb = s.type === "outbound-rtp";
            if (inb && s.kind === "audio") out.audioBytesReceived += s.bytesReceived || 0;
            if (outb && s.kind === "video") out.videoBytesSent += s.bytesSent || 0;
            if (outb && s.kind === "audio") out.audioBytesSent += s.bytesSent || 0;
          });
          return out;
        }""",
        which,
    )


async def rising(page: Page, key: str, which: str = "subscriber", timeout: float = 15.0) -> None:
    """Wait until ``key`` in the page's stats is positive and still increasing."""
    deadline = asyncio.get_running_loop().time() + timeout
    first = None
    while asyncio.get_running_loop().time() < deadline:
        value = (await stats(page, which))[key]
        if value > 0 and first is not None and value > first:
            return
        if value > 0 and first is None:
            first = value
        await asyncio.sleep(0.4)
    raise AssertionError(f"{which} {key} did not rise: {await stats(page, which)}")


#: Makes the page offer H264 first for video (the join page itself lets the browser pick).
PREFER_H264 = """
const createOffer = RTCPeerConnection.prototype.createOffer;
RTCPeerConnection.prototype.createOffer = function (...args) {
  const codecs = RTCRtpSender.getCapabilities("video").codecs;
  const h264 = codecs.filter((c) => c.mimeType === "video/H264");
  for (const t of this.getTransceivers()) {
    if (h264.length && t.sender.track && t.sender.track.kind === "video") {
      t.setCodecPreferences([...h264, ...codecs.filter((c) => c.mimeType !== "video/H264")]);
    }
  }
  return createOffer.apply(this, args);
};
"""
