// Joins a meeting link as a guest in Firefox ESR (headless, WebDriver BiDi via
// puppeteer-core) and reports, as JSON lines on stdout, what the page receives.
// Usage: node guest.mjs <join_url> <name>; runs until stdin closes.
import puppeteer from "puppeteer-core";

const [url, name] = process.argv.slice(2);
const browser = await puppeteer.launch({
  browser: "firefox",
  executablePath: process.env.FIREFOX || "/usr/bin/firefox-esr",
  headless: true,
  protocol: "webDriverBiDi",
  extraPrefsFirefox: {
    "media.navigator.streams.fake": true, // a fake camera and microphone
    "media.navigator.permission.disabled": true,
    "media.navigator.permission.fake": true,
    "media.peerconnection.ice.loopback": true, // the test's namespace has only lo
    "media.peerconnection.ice.default_address_only": false,
    "media.autoplay.default": 0,
  },
});
const report = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
try {
  const page = await browser.newPage();
  page.on("pageerror", (err) => report({ event: "pageerror", message: String(err) }));
  await page.goto(url);
  await page.waitForSelector("#name-input");
  await page.type("#name-input", name);
  await page.click("#join-button");
  await page.waitForFunction(() => window.meeting && window.meeting.phase === "meeting");
  report({ event: "joined", id: await page.evaluate(() => window.meeting.me.id) });
  const stats = () =>
    page.evaluate(async () => {
      const out = { framesDecoded: 0, audioBytesReceived: 0, videoBytesSent: 0 };
      for (const which of ["subscriber", "publisher"]) {
        const pc = window.meeting[which];
        if (!pc) continue;
        (await pc.getStats()).forEach((s) => {
          if (s.type === "inbound-rtp" && s.kind === "video") out.framesDecoded += s.framesDecoded || 0;
          if (s.type === "inbound-rtp" && s.kind === "audio") out.audioBytesReceived += s.bytesReceived || 0;
          if (s.type === "outbound-rtp" && s.kind === "video") out.videoBytesSent += s.bytesSent || 0;
        });
      }
      out.states = ["publisher", "subscriber"].map((w) => window.meeting[w]?.connectionState);
      return out;
    });
  let open = true;
  process.stdin.on("end", () => (open = false));
  process.stdin.resume();
  while (open) {
    report({ event: "stats", ...(await stats()) });
    await new Promise((r) => setTimeout(r, 500));
  }
} catch (err) {
  report({ event: "error", message: String(err && err.stack ? err.stack : err) });
} finally {
  await browser.close();
}
