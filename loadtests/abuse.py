"""The `abuse` benchmark scenario: a real meeting under attack from hostile clients.

Two real peers (the link's host URL) publish audio + video and receive each other's
media, while guest and anonymous connections attack the same node for ``size`` seconds:

- SDP bombs: guests publish offers with 700 m-lines, again and again;
- message floods: connections send thousands of pings (and oversize frames) as fast
  as the socket takes them;
- connection floods: many WebSockets from one address;
- publication churn: a guest joins, publishes audio + video and leaves, in a loop;
- knock floods: guests knock on a second meeting that has a waiting room.

Reported: the longest gap between two packets of any stream at the real peers before
the attack (baseline) and during it, their loss, and the server's RSS before and after.
The goal (issue 10): longest gap < 200 ms during the attack, RSS growth < 50 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections import Counter
from typing import Any

import aiohttp
from aiortc import RTCPeerConnection

from mediaserver.client import MeetingClient
from mediaserver.sfu.peer import IdleTrack, configure_ice_addresses, make_configuration

from .bots import OurParticipant, bounded, rss_bytes
from .rtp import RtpCounter, RtpPump

__all__ = ["scenario_abuse"]

BOMB_MLINES = 700
PINGS_PER_FLOOD = 20_000
BASELINE_SECONDS = 3.0


class GapCounter(RtpCounter):
    """An RtpCounter that also records the longest gap between two packets of one kind
    (audio or video), across subscriber connections: when the server replaces the
    connection, the counter follows the new one (:meth:`follow`) and a switch without
    a gap counts as none. The bots' audio packets are small, their video packets large,
    so the size tells the kind."""

    def __init__(self, pc: RTCPeerConnection) -> None:
        super().__init__(pc)
        self.last_arrival: dict[str, int] = {}
        self.longest_gap_ns = 0

    def follow(self, pc: RTCPeerConnection) -> None:
        self.pc = pc
        self.hook()

    def _on_packet(self, data: bytes) -> None:
        now = time.monotonic_ns()
        kind = "video" if len(data) > 600 else "audio"
        last = self.last_arrival.get(kind)
        if last is not None and now - last > self.longest_gap_ns:
            self.longest_gap_ns = now - last
        self.last_arrival[kind] = now

    def start_window(self) -> None:
        super().start_window()
        self.longest_gap_ns = 0
        start = time.monotonic_ns()  # silence from the window's start counts as a gap
        self.last_arrival = dict.fromkeys(self.last_arrival, start)

    def stop_window(self) -> None:
        super().stop_window()
        end = time.monotonic_ns()  # so does silence until its end
        for last in self.last_arrival.values():
            self.longest_gap_ns = max(self.longest_gap_ns, end - last)


async def _mint(http: aiohttp.ClientSession, base: str, event_id: str, policy: str) -> Any:
    now = time.time()
    body = {
        "event": {
            "id": f"{event_id}-{os.getpid()}-{int(now)}",
            "summary": "abuse bench",
            "start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
            "end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600)),
        },
        "options": {"guest_policy": policy, "max_participants": 1000},
    }
    async with http.post(base + "/v1/links", json=body) as r:
        if r.status not in (200, 201):
            raise RuntimeError(f"minting a link failed: {r.status} {await r.text()}")
        return await r.json()


def _slug(url: str) -> str:
    return url.rsplit("/j/", 1)[1].split("?", 1)[0]


class RealPeer(OurParticipant):
    """A bot person who joins through a meeting link and records media gaps."""

    def __init__(self, url: str, name: str) -> None:
        super().__init__(url, name)
        self.gaps: GapCounter | None = None

        def hook(pc: RTCPeerConnection) -> None:
            if self.gaps is None:
                self.gaps = GapCounter(pc)
            self.gaps.follow(pc)

        self.client.subscriber_hook = hook

    async def join_link(self, slug: str) -> None:
        await self.client.connect()
        await self.client.join_with({"type": "join", "link": slug, "name": self.client.name})
        await self.client.publish([IdleTrack("audio"), IdleTrack("video")])
        pc = self.client.publisher
        assert pc is not None
        await bounded("publisher connection", lambda: pc.connectionState == "connected", 30)
        self.pump = RtpPump(pc)
        self.pump.start()


async def _bomb_sdp() -> str:
    """A well-formed offer with BOMB_MLINES audio m-lines, under the default 64 KiB
    message limit (ICE and DTLS parameters from a real offer, at session level)."""
    pc = RTCPeerConnection(make_configuration([]))
    pc.addTransceiver(IdleTrack("audio"), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    lines = pc.localDescription.sdp.split("\r\n")
    await pc.close()
    keep = ("a=ice-ufrag:", "a=ice-pwd:", "a=fingerprint:sha-256", "a=setup:")
    session = [line for line in lines if line.startswith(keep)]
    mids = [str(i) for i in range(BOMB_MLINES)]
    out = ["v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0", "a=group:BUNDLE " + " ".join(mids)]
    out += session
    for mid in mids:
        out += [
            "m=audio 9 UDP/TLS/RTP/SAVPF 0",  # PCMU: a static payload type, no rtpmap
            f"a=mid:{mid}",
            "a=inactive",  # inactive m-lines are not publications: no cap applies
            "a=rtcp-mux",
        ]
    return "\r\n".join(out) + "\r\n"


class Attack:
    """The attackers: raw WebSockets (cheap) and SDK clients for churn."""

    def __init__(self, url: str, slug: str, lobby_slug: str) -> None:
        self.url = url
        self.slug = slug
        self.lobby_slug = lobby_slug
        self.replies: Counter[str] = Counter()
        self.sent = 0
        self.stop = asyncio.Event()

    def _count(self, frame: aiohttp.WSMessage) -> None:
        if frame.type == aiohttp.WSMsgType.TEXT:
            with contextlib.suppress(ValueError):
                msg = json.loads(frame.data)
                self.replies[str(msg.get("code") or msg.get("type"))] += 1
        elif frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            self.replies["socket_closed"] += 1

    async def _drain(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        with contextlib.suppress(Exception):
            async for frame in ws:
                self._count(frame)
        self.replies["socket_closed"] += 1

    async def _socket(
        self, http: aiohttp.ClientSession, join_slug: str | None, name: str
    ) -> aiohttp.ClientWebSocketResponse | None:
        try:
            ws = await http.ws_connect(self.url, max_msg_size=4 << 20)
        except (aiohttp.ClientError, OSError):
            self.replies["connect_refused"] += 1
            return None
        await ws.send_str(json.dumps({"type": "hello", "version": 1, "id": 0}))
        if join_slug is not None:
            await ws.send_str(
                json.dumps({"type": "join", "link": join_slug, "name": name, "id": 1})
            )
        return ws

    async def sdp_bombs(self, http: aiohttp.ClientSession, n: int) -> None:
        sdp = await _bomb_sdp()

        async def one(i: int) -> None:
            while not self.stop.is_set():
                ws = await self._socket(http, self.slug, f"bomber {i}")
                if ws is None:
                    await asyncio.sleep(0.2)
                    continue
                drain = asyncio.ensure_future(self._drain(ws))
                with contextlib.suppress(Exception):
                    for k in range(5):
                        await ws.send_str(json.dumps({"type": "publish", "sdp": sdp, "id": 10 + k}))
                        self.sent += 1
                        await asyncio.sleep(0.05)
                    await asyncio.sleep(0.5)
                    await ws.close()
                await drain

        await asyncio.gather(*(one(i) for i in range(n)))

    async def floods(self, http: aiohttp.ClientSession, n: int) -> None:
        ping = json.dumps({"type": "ping"})
        big = json.dumps({"type": "ping", "pad": "x" * (1 << 20)})

        async def one(i: int) -> None:
            while not self.stop.is_set():
                ws = await self._socket(http, None, "")
                if ws is None:
                    await asyncio.sleep(0.2)
                    continue
                drain = asyncio.ensure_future(self._drain(ws))
                with contextlib.suppress(Exception):
                    for k in range(PINGS_PER_FLOOD):
                        if ws.closed or self.stop.is_set():
                            break
                        await ws.send_str(big if k % 1000 == 999 else ping)
                        self.sent += 1
                    await ws.close()
                await drain

        await asyncio.gather(*(one(i) for i in range(n)))

    async def connection_flood(self, http: aiohttp.ClientSession, n: int) -> None:
        sockets = []
        for _ in range(n):
            ws = await self._socket(http, None, "")
            if ws is not None:
                sockets.append(ws)
        await self.stop.wait()
        for ws in sockets:
            with contextlib.suppress(Exception):
                await ws.close()
        self.replies["flood_sockets_open"] = len(sockets)

    async def knocks(self, http: aiohttp.ClientSession, n: int) -> None:
        sockets = []
        for i in range(n):
            if self.stop.is_set():
                break
            ws = await self._socket(http, self.lobby_slug, f"knocker {i}")
            if ws is not None:
                sockets.append((ws, asyncio.ensure_future(self._drain(ws))))
        await self.stop.wait()
        for ws, drain in sockets:
            with contextlib.suppress(Exception):
                await ws.close()
            await drain

    async def churn(self) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            client = MeetingClient(self.url, name=f"churner {i}")
            try:
                await client.connect()
                await client.join_with({"type": "join", "link": self.slug, "name": client.name})
                await client.publish([IdleTrack("audio"), IdleTrack("video")])
                await asyncio.sleep(0.2)
                self.replies["churn_cycle"] += 1
            except Exception as exc:
                self.replies[f"churn_{getattr(exc, 'code', type(exc).__name__)}"] += 1
                await asyncio.sleep(0.2)
            finally:
                with contextlib.suppress(Exception):
                    await client.leave()


async def scenario_abuse(args: argparse.Namespace) -> dict[str, Any]:
    """Two real peers keep meeting while hostile clients attack for ``size`` seconds."""
    base = args.url.replace("ws://", "http://").rsplit("/ws", 1)[0]
    headers = {"Authorization": f"Bearer {args.api_key}"}
    async with aiohttp.ClientSession(headers=headers) as api:
        link = await _mint(api, base, "abuse", "allow")
        lobby_link = await _mint(api, base, "abuse-lobby", "lobby")
    host_slug = _slug(link["host_url"])
    guest_slug = _slug(link["join_url"])
    peers = [RealPeer(args.url, "Ada"), RealPeer(args.url, "Bob")]
    for p in peers:
        await p.join_link(host_slug)
    deadline = time.monotonic() + 30
    while not all(p.gaps is not None and len(p.gaps._hooked) for p in peers):
        if time.monotonic() > deadline:
            raise TimeoutError("subscriber connections")
        await asyncio.sleep(0.1)
    await asyncio.sleep(2.0)  # keyframes, first packets

    async def window(seconds: float) -> dict[str, float]:
        counters = [p.gaps for p in peers if p.gaps is not None]
        for c in counters:
            c.start_window()
        await asyncio.sleep(seconds)
        for c in counters:
            c.stop_window()
        received = expected = 0
        for c in counters:
            r, e, _ = c.summary()
            received += r
            expected += e
        return {
            "longest_gap_ms": max((c.longest_gap_ns for c in counters), default=0) / 1e6,
            "loss_pct": 100.0 * max(0, expected - received) / expected if expected else 100.0,
            "received": received,
            "streams": sum(len(c.streams) for c in counters),
        }

    rss_before = rss_bytes(args.server_pid)
    baseline = await window(BASELINE_SECONDS)
    seconds = max(1.0, float(args.size))
    # The attackers run in a process of their own, so that their CPU use cannot slow
    # down the real peers' own sending and receiving in this one.
    attacker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "loadtests.abuse",
        "--url",
        args.url,
        "--slug",
        guest_slug,
        "--lobby-slug",
        _slug(lobby_link["join_url"]),
        "--seconds",
        str(seconds + 1.0),
        "--ice-address",
        args.ice_address,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    await asyncio.sleep(0.5)  # the attack is under way
    during = await window(seconds)
    out, err = await asyncio.wait_for(attacker.communicate(), 60)
    lines = out.decode().strip().splitlines()
    if attacker.returncode != 0 or not lines:
        tail = "\n".join(err.decode(errors="replace").strip().splitlines()[-15:])
        raise RuntimeError(f"the attacking process failed ({attacker.returncode}):\n{tail}")
    report = json.loads(lines[-1])
    await asyncio.sleep(1.0)
    after = await window(2.0)
    rss_after = rss_bytes(args.server_pid)
    for p in peers:
        await p.close()
    return {
        "us_per_forwarded_packet": float("nan"),
        "forwarded_pps": during["received"] / max(1.0, float(args.size)),
        "latency_ms_p50": float("nan"),
        "latency_ms_p99": float("nan"),
        "loss_pct": during["loss_pct"],
        "baseline_longest_gap_ms": round(baseline["longest_gap_ms"], 1),
        "longest_gap_ms": round(during["longest_gap_ms"], 1),
        "after_longest_gap_ms": round(after["longest_gap_ms"], 1),
        "streams_during": during["streams"],
        "streams_after": after["streams"],
        "rss_before_mb": round(rss_before / 2**20, 1),
        "rss_after_mb": round(rss_after / 2**20, 1),
        "rss_growth_mb": round((rss_after - rss_before) / 2**20, 1),
        "attack_messages_sent": report["sent"],
        "attack_replies": report["replies"],
    }


async def _attack(args: argparse.Namespace) -> dict[str, Any]:
    attack = Attack(args.url, args.slug, args.lobby_slug)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        tasks = [
            asyncio.ensure_future(attack.sdp_bombs(http, 20)),
            asyncio.ensure_future(attack.floods(http, 4)),
            asyncio.ensure_future(attack.connection_flood(http, 300)),
            asyncio.ensure_future(attack.knocks(http, 300)),
            asyncio.ensure_future(attack.churn()),
        ]
        await asyncio.sleep(args.seconds)
        attack.stop.set()
        for t in tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(t, 20)
    return {"sent": attack.sent, "replies": dict(attack.replies.most_common(12))}


def main() -> int:
    """The attacking process of the scenario (started by scenario_abuse)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--slug", required=True, help="guest slug of the attacked meeting")
    parser.add_argument("--lobby-slug", required=True, help="guest slug of a lobby meeting")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--ice-address", default="127.0.0.1")
    args = parser.parse_args()
    configure_ice_addresses([args.ice_address])
    print(json.dumps(asyncio.run(_attack(args))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
