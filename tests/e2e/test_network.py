"""Media on real networks, in real Chromium, with nftables rules in the test's own network
namespace: recovery after the server's UDP is dropped for 10 s, UDP blocked but TURN over
TCP allowed (a real coturn), the 15 s "cannot connect" message; page layout."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import subprocess

import pytest
from browser import Browsers, rising, shot
from server_helpers import make_config
from sites import join_as_guest, running_site
from turn_server import TurnServer, running_turn

from mediaserver.sfu.peer import configure_udp_mux

pytestmark = [pytest.mark.e2e]


def _free_udp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def muxed_site(netns):
    """A server whose media all uses one UDP port (so one nftables rule can cut it)."""
    config = make_config()
    udp_port = _free_udp_port()
    config = dataclasses.replace(config, rtc=dataclasses.replace(config.rtc, udp_port=udp_port))
    try:
        async with running_site(config) as site:
            site.udp_port = udp_port  # type: ignore[attr-defined]
            yield site
    finally:
        configure_udp_mux(None)


def nft(script: str) -> None:
    subprocess.run(["nft", "-f", "-"], input=script.encode(), check=True)


def drop_udp_port(port: int) -> None:
    """Drop every UDP datagram to or from ``port`` in this (the test's) namespace."""
    nft(
        f"""
table inet mse2e_drop {{
  chain input {{
    type filter hook input priority 0; udp dport {port} drop; udp sport {port} drop;
  }}
  chain output {{
    type filter hook output priority 0; udp dport {port} drop; udp sport {port} drop;
  }}
}}
"""
    )


def restore_udp() -> None:
    subprocess.run(["nft", "delete", "table", "inet", "mse2e_drop"], check=False)


async def _join_two(site, b):
    link = await site.link(guest_policy="allow")
    pages = []
    for role, name in (("host", "Hana Host"), ("member", "Max Member")):
        page = await b.page(site.srv.http_url)
        await page.goto(await site.token_url(link, role, name, f"u-{role}"))
        await page.get_by_role("button", name="Join meeting").click()
        await page.get_by_role("button", name="Leave").wait_for()
        pages.append(page)
    for page in pages:
        await rising(page, "framesDecoded")
    return pages


async def test_media_comes_back_after_the_servers_udp_is_dropped_for_10s(muxed_site):
    if not shutil.which("nft"):
        pytest.skip("nftables missing: run `make test` (it installs it)")
    site = muxed_site
    async with Browsers() as b:
        pages = await _join_two(site, b)
        ids = [await p.evaluate("window.meeting.me.id") for p in pages]
        room = next(iter(site.srv.rooms.rooms.values()))
        loop = asyncio.get_running_loop()
        drop_udp_port(site.udp_port)
        dropped_at = loop.time()
        try:
            for page in pages:
                lost = page.locator(".tile .conn", has_text="Connection lost, retrying…")
                await lost.first.wait_for(timeout=20_000)
            await shot(pages[0], "media-lost")
            await asyncio.sleep(max(0.0, dropped_at + 10 - loop.time()))
        finally:
            restore_udp()
        for page in pages:
            await rising(page, "framesDecoded", timeout=45)
            await rising(page, "audioBytesReceived", timeout=20)
            await page.wait_for_function(
                "() => [...document.querySelectorAll('.tile .conn')].every(c => c.hidden)"
                " && [...document.querySelectorAll('.tile')].every("
                "t => t.classList.contains('has-video'))",
                timeout=30_000,
            )
            assert await page.evaluate("window.meeting.reconnects") == 0  # same signalling
            assert await page.evaluate("window.meeting.mediaRestarts") >= 1
            assert await page.evaluate("window.meeting.phase") == "meeting"
        assert [await p.evaluate("window.meeting.me.id") for p in pages] == ids
        assert set(room.participants) == set(ids)  # nobody left the meeting


async def test_meeting_screen_fits_knock_leaves_people_visible_no_404(muxed_site):
    site = muxed_site
    link = await site.link()
    async with Browsers() as b:
        host = await b.page(site.srv.http_url)
        missing: list[str] = []
        host.on("response", lambda r: missing.append(r.url) if r.status >= 400 else None)
        await host.goto(await site.token_url(link, "host", "Hana Host", "u-host"))
        await host.get_by_role("button", name="Join meeting").click()
        await host.get_by_role("heading", name="Host controls").wait_for()
        guest = await b.page(site.srv.http_url)
        await join_as_guest(guest, link["join_url"], "Gus Guest")
        knock = host.get_by_role("alertdialog", name="Gus Guest wants to join")
        await knock.wait_for()
        await shot(host, "knock-layout")
        people = await host.locator("#people").bounding_box()
        card = await knock.bounding_box()
        assert people and card
        overlap_x = (
            card["x"] < people["x"] + people["width"] and people["x"] < card["x"] + card["width"]
        )
        overlap_y = (
            card["y"] < people["y"] + people["height"] and people["y"] < card["y"] + card["height"]
        )
        assert not (overlap_x and overlap_y), (card, people)
        sizes = await host.evaluate(
            "() => { const main = document.querySelector('main');"
            " return [document.documentElement.scrollHeight, window.innerHeight,"
            " main.scrollHeight, main.clientHeight]; }"
        )
        assert sizes[0] <= sizes[1] and sizes[2] <= sizes[3], sizes
        assert not missing, missing  # favicon included


def block_udp_except_relay(udp_port: int, turn: TurnServer) -> None:
    """UDP between browser and server is blocked (also UDP to the TURN server): only the
    browser's TCP connection to TURN, and TURN's relayed UDP to the server, pass."""
    relay = f"{turn.relay_min}-{turn.relay_max}"
    rules = (
        f"udp dport {turn.port} drop; "
        f"udp dport {udp_port} udp sport != {relay} drop; "
        f"udp sport {udp_port} udp dport != {relay} drop;"
    )
    nft(
        f"""
table inet mse2e_drop {{
  chain input {{ type filter hook input priority 0; {rules} }}
  chain output {{ type filter hook output priority 0; {rules} }}
}}
"""
    )


@pytest.fixture
def coturn(netns):
    with running_turn() as server:
        yield server


async def test_udp_blocked_media_flows_through_turn_over_tcp(netns, coturn):
    config = make_config()
    udp_port = _free_udp_port()
    config = dataclasses.replace(
        config,
        rtc=dataclasses.replace(config.rtc, udp_port=udp_port),
        turn=dataclasses.replace(config.turn, urls=(coturn.url("tcp"),), secret=coturn.secret),
    )
    block_udp_except_relay(udp_port, coturn)
    try:
        async with running_site(config) as site, Browsers() as b:
            pages = await _join_two(site, b)
            for page in pages:
                await rising(page, "audioBytesReceived")
                pair = await page.evaluate(SELECTED_PAIR)
                assert pair == {"local": "relay", "relayProtocol": "tcp"}, pair
    finally:
        restore_udp()
        configure_udp_mux(None)


async def test_no_media_within_15s_names_the_likely_cause(muxed_site):
    drop_udp_port(muxed_site.udp_port)
    try:
        async with Browsers() as b:
            page = await b.page(muxed_site.srv.http_url)
            link = await muxed_site.link(guest_policy="allow")
            await join_as_guest(page, link["join_url"], "Una Udp")
            alert = page.locator("#media-problem")
            await alert.wait_for(timeout=30_000)
            text = await alert.inner_text()
            assert "blocks UDP" in text and "no TURN relay configured" in text, text
            await shot(page, "media-problem")
            assert await page.evaluate("window.meeting.phase") == "meeting"
    finally:
        restore_udp()


SELECTED_PAIR = """async () => {
  const report = await window.meeting.publisher.getStats();
  let pair = null;
  report.forEach((s) => {
    if (s.type === "transport") pair = report.get(s.selectedCandidatePairId);
  });
  const local = pair && report.get(pair.localCandidateId);
  return local && {local: local.candidateType, relayProtocol: local.relayProtocol};
}"""
