"""The grid scenario: N participants, each renders one large tile and N-2 small ones.

Every participant publishes audio and video and receives everyone else. It runs twice in
one bots process: with single-stream video (every subscriber gets every full-size
stream) and with simulcast (each publisher sends three layers, each subscriber gets the
full layer for its large tile and the quarter layer for its small ones, chosen by the
server from ``video_size``). Reported per variant: server CPU, forwarded packets/s and
each subscriber's downlink bitrate (median and largest).

Simulcast bots do what a browser does: the publish offer gets the ``a=rid`` /
``a=simulcast`` lines and the rid extension, and :class:`SimulcastPump` sends three
SSRCs whose packets carry the mid and rid header extensions. Payloads are VP8-shaped
(keyframes declare 320x180, 640x360 and 1280x720) and never encoded.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription

from linkapi.secrets_ import mint_room_token
from mediaserver.config import load_config
from mediaserver.sfu import rtcp
from mediaserver.sfu.peer import IdleTrack
from mediaserver.sfu.simulcast import EXT_REPAIRED_RID, EXT_RID

from . import bots
from .rtp import KEYFRAME_INTERVAL, MAGIC, RtpCounter, RtpPump, _hdr, _stamp

__all__ = ["SimulcastPump", "scenario_grid", "simulcast_offer"]

#: rid -> (width, height, packets per frame, packet bytes); 25 frames/s
LAYERS = {
    "q": (320, 180, 1, 500),  # ~100 kbit/s
    "h": (640, 360, 2, 900),  # ~360 kbit/s
    "f": (1280, 720, 4, 1150),  # ~920 kbit/s (the single-stream bots send this)
}
RID_EXT_ID = 13
RRID_EXT_ID = 14
LARGE = (1280, 720)
SMALL = (320, 180)
#: After the sizes / substreams are sent, before measuring (the same for both servers).
SETTLE_SECONDS = 6.0


def simulcast_offer(sdp: str) -> str:
    """Add a browser's simulcast send lines to the video section of an aiortc offer."""
    lines = sdp.replace("\r\n", "\n").strip("\n").split("\n")
    out: list[str] = []
    in_video = False
    for line in lines:
        if line.startswith("m="):
            if in_video:
                out += _sim_lines()
            in_video = line.startswith("m=video")
        out.append(line)
    if in_video:
        out += _sim_lines()
    return "\r\n".join(out) + "\r\n"


def _sim_lines() -> list[str]:
    rids = list(LAYERS)
    return [
        f"a=extmap:{RID_EXT_ID} {EXT_RID}",
        f"a=extmap:{RRID_EXT_ID} {EXT_REPAIRED_RID}",
        *(f"a=rid:{r} send" for r in rids),
        "a=simulcast:send " + ";".join(rids),
    ]


def _keyframe_payload(width: int, height: int, size: int, n: int) -> bytes:
    header = (
        b"\x10\x00\x00\x9d\x01\x2a" + width.to_bytes(2, "little") + height.to_bytes(2, "little")
    )
    stamp = _stamp.pack(MAGIC, time.time_ns(), n)
    return b"\x10" + header + stamp + b"\x00" * max(0, size - 1 - len(header) - len(stamp))


def _payload(first: bool, size: int, n: int) -> bytes:
    head = b"\x10\x11\x00\x00" if first else b"\x00"
    stamp = _stamp.pack(MAGIC, time.time_ns(), n)
    return head + stamp + b"\x00" * max(0, size - len(head) - len(stamp))


class SimulcastPump(RtpPump):
    """Audio as :class:`RtpPump`; video as three rid layers on three SSRCs."""

    def __init__(self, pc: RTCPeerConnection) -> None:
        super().__init__(pc)
        self.ssrcs = {rid: random.getrandbits(32) or 1 for rid in LAYERS}
        self._wanted = set(LAYERS)
        by_ssrc = {v: k for k, v in self.ssrcs.items()}

        async def on_rtcp(data: bytes) -> None:
            try:
                items = rtcp.parse_rtcp(data)
            except ValueError:
                return
            for item in items:
                if isinstance(item, rtcp.Pli) and item.media_ssrc in by_ssrc:
                    self._wanted.add(by_ssrc[item.media_ssrc])
                elif isinstance(item, rtcp.Fir):
                    self._wanted.update(by_ssrc[e[0]] for e in item.entries if e[0] in by_ssrc)

        self._dtls._handle_rtcp_data = on_rtcp

    def _extensions(self, rid: str) -> bytes:
        s = self.streams["video"]
        mid = s.mid.encode()
        body = b""
        if s.mid_ext_id:
            body += bytes(((s.mid_ext_id << 4) | (len(mid) - 1),)) + mid
        body += bytes(((RID_EXT_ID << 4) | (len(rid) - 1),)) + rid.encode()
        body += b"\x00" * (-len(body) % 4)
        return b"\xbe\xde" + (len(body) // 4).to_bytes(2, "big") + body

    async def _video_loop(self) -> None:
        s = self.streams["video"]
        seqs = {rid: random.randrange(0x8000) for rid in LAYERS}
        ext = {rid: self._extensions(rid) for rid in LAYERS}
        ts, frame, n = 9000, 0, 0
        start = time.monotonic()
        last_key = {rid: -KEYFRAME_INTERVAL for rid in LAYERS}
        while True:
            now = time.monotonic()
            for rid, (width, height, per_frame, size) in LAYERS.items():
                keyframe = rid in self._wanted or now - last_key[rid] >= KEYFRAME_INTERVAL
                if keyframe:
                    self._wanted.discard(rid)
                    last_key[rid] = now
                count = per_frame * 4 if keyframe else per_frame
                for i in range(count):
                    marker = 0x80 if i == count - 1 else 0
                    if i == 0 and keyframe:
                        payload = _keyframe_payload(width, height, size, n)
                    else:
                        payload = _payload(i == 0, size, n)
                    head = _hdr.pack(0x90, marker | s.payload_type, seqs[rid], ts, self.ssrcs[rid])
                    await self._send(head + ext[rid] + payload)
                    seqs[rid] = (seqs[rid] + 1) & 0xFFFF
                    n += 1
            ts = (ts + 3600) & 0xFFFFFFFF
            frame += 1
            await asyncio.sleep(max(0.0, start + frame * 0.04 - time.monotonic()))


class ByteCounter(RtpCounter):
    """Every byte and packet a subscriber connection receives, per window (a layer
    switch changes which publisher sequence numbers arrive, so no loss figure)."""

    def __init__(self) -> None:
        super().__init__(None)  # type: ignore[arg-type]  # the pc comes with the hook
        self.bytes = 0
        self.packets = 0

    def attach(self, pc: RTCPeerConnection) -> None:
        self.pc = pc
        self.hook()

    def _on_packet(self, data: bytes) -> None:
        self.bytes += len(data)  # SRTP bytes (with the auth tag): what the link carries
        self.packets += 1


class GridBot(bots.OurParticipant):
    def __init__(self, url: str, name: str, simulcast: bool, secret: bytes) -> None:
        super().__init__(url, name)
        self.secret = secret
        self.simulcast = simulcast
        self.bytes_in = ByteCounter()
        self.client.subscriber_hook = self.bytes_in.attach

    async def join(self, room: str) -> None:
        token, _ = mint_room_token(self.secret, room, self.client.name, ttl_seconds=3600)
        c = self.client
        await c.connect()
        await c.join(room, token)
        pc = c.publisher = c._watched_pc("publisher")
        pc.addTransceiver(IdleTrack("audio"), direction="sendonly")
        pc.addTransceiver(IdleTrack("video"), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription.sdp
        if self.simulcast:
            offer = simulcast_offer(offer)
        reply = await c.request({"type": "publish", "sdp": offer})
        await pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="answer"))
        c.publications = list(reply["publications"])
        await bots.bounded("publisher connection", lambda: pc.connectionState == "connected", 30)
        self.pump = SimulcastPump(pc) if self.simulcast else RtpPump(pc)
        self.pump.start()


class JanusGridBot(bots.JanusParticipant):
    """The same person against Janus's VideoRoom: small tiles get substream 0."""

    def __init__(self, url: str, name: str, simulcast: bool) -> None:
        super().__init__(url, name)
        self.simulcast = simulcast
        self.bytes_in = ByteCounter()

    async def join_room(self, room: int) -> None:
        from .janus import create_room
        from .janus import publish as janus_publish
        from .rtp import publisher_pc

        await self.session.create()
        await create_room(self.session, room, publishers=100)
        pc = publisher_pc()
        self.pcs.append(pc)
        self.feed_id = await janus_publish(
            self.session,
            room,
            self.name,
            pc,
            offer_transform=simulcast_offer if self.simulcast else None,
        )
        await bots.bounded("publisher connection", lambda: pc.connectionState == "connected", 30)
        self.pump = SimulcastPump(pc) if self.simulcast else RtpPump(pc)
        self.pump.start()

    async def watch(self, room: int, feeds: list[int], large: int) -> None:
        from aiortc import RTCPeerConnection as PeerConnection

        from mediaserver.sfu.peer import make_configuration

        from .janus import subscribe as janus_subscribe

        pc = PeerConnection(make_configuration([]))
        self.pcs.append(pc)
        original = pc.setRemoteDescription

        async def set_remote(desc: Any) -> None:
            await original(desc)
            self.bytes_in.attach(pc)

        pc.setRemoteDescription = set_remote  # type: ignore[method-assign]
        handle = await janus_subscribe(self.session, room, feeds, pc)
        if self.simulcast:
            small = [
                {"mid": st["mid"], "substream": 0}
                for st in self.session.streams_of.get(handle, [])
                if st.get("type") == "video" and st.get("feed_id") != large
            ]
            # Janus 1.1.2 applies only the first entry of a configure's `streams`
            # (measured: one small tile switched): one request per stream
            await asyncio.gather(
                *(
                    self.session.message(handle, {"request": "configure", "streams": [stream]})
                    for stream in small
                )
            )


async def _janus_variant(args: argparse.Namespace, simulcast: bool) -> dict[str, Any]:
    n = args.size
    room = 700000 + n + (2 if simulcast else 1) * 100 + os.getpid() % 1000 * 1000
    people = [JanusGridBot(args.url, f"g{i}", simulcast) for i in range(n)]
    try:
        for p in people:
            await p.join_room(room)
        feeds = [p.feed_id for p in people]
        await asyncio.gather(
            *(
                p.watch(
                    room,
                    [f for f in feeds if f is not None and f != p.feed_id],
                    int(feeds[(i + 1) % n] or 0),
                )
                for i, p in enumerate(people)
            )
        )
        return await _measure(args, people)
    finally:
        await asyncio.gather(*(p.close() for p in people), return_exceptions=True)


async def _variant(args: argparse.Namespace, simulcast: bool) -> dict[str, Any]:
    n = args.size
    room = f"grid-{n}-{'sim' if simulcast else 'single'}-{os.getpid()}"
    # `python -m loadtests.bots` runs bots.py as __main__: read the key from the config
    secret = load_config(args.server_config, env={}).linkapi.token_secret.encode()
    people = [GridBot(args.url, f"g{i}", simulcast, secret) for i in range(n)]
    try:
        for p in people:
            await p.join(room)
        for p in people:
            await p.client.wait_for_tracks(2 * (n - 1), timeout=bots.SETUP_TIMEOUT)
        ids = [p.client.participant_id for p in people]
        for i, p in enumerate(people):
            large = ids[(i + 1) % n]
            for t in p.client.live_tracks():
                if t.kind == "video":
                    size = LARGE if t.participant_id == large else SMALL
                    await p.client.set_video_size(t.publication_id, *size)
        return await _measure(args, people)
    finally:
        await asyncio.gather(*(p.close() for p in people), return_exceptions=True)


async def _measure(args: argparse.Namespace, people: list[Any]) -> dict[str, Any]:
    await asyncio.sleep(SETTLE_SECONDS)  # layer choices, keyframes, REMB settle
    for p in people:
        p.bytes_in.bytes = p.bytes_in.packets = 0
        p.bytes_in.recording = True
    cpu0, t0 = bots.cpu_seconds(args.server_pid), time.monotonic()
    await asyncio.sleep(args.window)
    cpu1, t1 = bots.cpu_seconds(args.server_pid), time.monotonic()
    for p in people:
        p.bytes_in.recording = False
    elapsed = t1 - t0
    kbps = [p.bytes_in.bytes * 8 / elapsed / 1000 for p in people]
    packets = sum(p.bytes_in.packets for p in people)
    return {
        "downlink_kbps_p50": statistics.median(kbps),
        "downlink_kbps_max": max(kbps),
        "forwarded_pps": packets / elapsed,
        "server_cpu_pct": 100.0 * (cpu1 - cpu0) / elapsed,
        "us_per_forwarded_packet": (cpu1 - cpu0) * 1e6 / packets if packets else float("nan"),
    }


async def scenario_grid(args: argparse.Namespace) -> dict[str, Any]:
    """N participants, one large and N-2 small tiles each: single-stream, then simulcast."""
    variant = _janus_variant if args.system == "janus" else _variant
    single = await variant(args, simulcast=False)
    await asyncio.sleep(1.0)
    sim = await variant(args, simulcast=True)
    out: dict[str, Any] = {f"single_{k}": v for k, v in single.items()}
    out.update({f"simulcast_{k}": v for k, v in sim.items()})
    out.update(sim)  # the row's standard metrics are the simulcast run's
    return out
