"""Benchmark bots: run one scenario against one system and print one JSON result line.

    python -m loadtests.bots --system mediaserver --url ws://10.77.0.1:8080/ws \\
        --server-pid 1234 --scenario fanout --size 10 --window 5

Runs inside the benchmark namespace, pinned to the bots' core (see loadtests/run.py).
Media is RTP written straight to DTLS transports (no encoder) and counted straight
from them (no decoder): see loadtests/rtp.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription

from linkapi.secrets_ import mint_room_token
from mediaserver.client.sdk import MeetingClient
from mediaserver.config import load_config
from mediaserver.sfu.peer import IdleTrack, configure_ice_addresses, make_configuration

from .procstat import (
    JoinPhase,
    cpu_seconds,
    percentile,
    rss_bytes,
    run_delay_seconds,
    udp_drops_by_address,
)
from .rtp import RtpCounter, RtpPump
from .servermetrics import metrics_url, scrape_buckets, server_join_figures

#: How long the streams may take to all flow before a scenario is measured anyway and
#: marked overloaded (a server that keeps up needs a few seconds; 60 s made an overloaded
#: full room 25 alone take two minutes of a `make bench` that must stay under ten).
SETUP_TIMEOUT = 30.0


async def bounded(what: str, predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


# ----------------------------------------------------------------- systems


class Participant:
    """One bot person: may publish (pump) and may subscribe (counter)."""

    pump: RtpPump | None = None
    counter: RtpCounter | None = None
    join_seconds: float = 0.0
    busy_retries = 0  # publish refused with busy and sent again

    async def close(self) -> None:
        raise NotImplementedError


#: The bots' own address (--ice-address): their sockets' drops are the bots' loss.
BOT_ADDRESS = "10.77.0.2"
#: The key that signs room tokens: the server's linkapi.token_secret (--server-config).
TOKEN_SECRET = b""


class OurParticipant(Participant):
    def __init__(self, url: str, name: str) -> None:
        self.client = MeetingClient(url, name=name)
        #: seconds from the start of the join to the end of each step (JOIN_STEPS)
        self.phases: dict[str, float] = {}

    async def join(self, room: str, *, publish: bool, subscribe: bool, video: bool = True) -> None:
        token, _ = mint_room_token(TOKEN_SECRET, room, self.client.name, ttl_seconds=3600)
        started = time.monotonic()
        if subscribe:
            self.counter = None

            def hook(pc: RTCPeerConnection) -> None:
                if self.counter is None:
                    self.counter = RtpCounter(pc)
                self.counter.pc = pc  # the server may replace the subscriber connection
                self.counter.hook()

            self.client.subscriber_hook = hook
        marks = self.phases
        await self.client.connect()
        await self.client.join(room, token)
        self.join_seconds = marks["joined"] = time.monotonic() - started
        if publish:  # for publishers, joining ends when their media connection is up
            tracks = [IdleTrack("audio")] + ([IdleTrack("video")] if video else [])
            request = self.client._publish_request

            async def timed(message: dict[str, Any]) -> dict[str, Any]:
                marks["offer_made"] = time.monotonic() - started
                reply = await request(message)
                marks["answered"] = time.monotonic() - started
                return reply

            self.client._publish_request = timed  # type: ignore[method-assign]
            await self.client.publish(tracks)  # the SDK sends it again after busy
            self.busy_retries = self.client.busy_retries
            pc = self.client.publisher
            assert pc is not None
            marks["answer_applied"] = time.monotonic() - started
            connected = asyncio.Event()

            def ice_state() -> None:
                if pc.iceConnectionState == "completed" and "ice_connected" not in marks:
                    marks["ice_connected"] = time.monotonic() - started

            def state() -> None:
                if pc.connectionState == "connected" and not connected.is_set():
                    self.join_seconds = marks["connected"] = time.monotonic() - started
                    connected.set()

            # timed when the states change, not by polling (a 50 ms poll added up to
            # 50 ms to every join the bots measured)
            pc.on("iceconnectionstatechange", ice_state)
            pc.on("connectionstatechange", state)
            ice_state()
            state()
            try:
                await asyncio.wait_for(connected.wait(), 30)
            except TimeoutError:
                raise TimeoutError("timed out waiting for the publisher connection") from None
            finally:
                pc.remove_listener("iceconnectionstatechange", ice_state)
                pc.remove_listener("connectionstatechange", state)
            self.pump = RtpPump(pc, video=video)
            self.pump.start()

    async def close(self) -> None:
        if self.pump is not None:
            await self.pump.stop()
        with contextlib.suppress(Exception):
            await self.client.leave()


class JanusParticipant(Participant):
    def __init__(self, url: str, name: str) -> None:
        from .janus import JanusSession

        self.url = url
        self.name = name
        self.session = JanusSession(url)
        self.pcs: list[RTCPeerConnection] = []
        self.feed_id: int | None = None
        # the multistream subscription that add_feeds keeps up to date
        self._sub_lock = asyncio.Lock()
        self._sub_handle: int | None = None
        self._sub_feeds: list[int] = []
        self.resubscribes = 0
        self.extra_counters: list[RtpCounter] = []  # of later subscriber connections

    async def join(self, room: int, *, publish: bool, video: bool = True) -> None:
        from .janus import create_room
        from .janus import publish as janus_publish
        from .rtp import publisher_pc

        started = time.monotonic()
        await self.session.create()
        await create_room(self.session, room, publishers=100)
        if publish:
            pc = publisher_pc(video=video)
            self.pcs.append(pc)
            self.feed_id = await janus_publish(self.session, room, self.name, pc)
            await bounded("publisher connection", lambda: pc.connectionState == "connected", 30)
            self.pump = RtpPump(pc, video=video)
            self.pump.start()
        self.join_seconds = time.monotonic() - started

    async def subscribe(self, room: int, feeds: list[int]) -> int | None:
        """A new subscriber connection receiving ``feeds``; returns its Janus handle."""
        from .janus import subscribe as janus_subscribe

        if not feeds:
            return None
        pc = RTCPeerConnection(make_configuration([]))
        self.pcs.append(pc)
        counter = self.counter or RtpCounter(pc)
        if self.counter is None:
            self.counter = counter
        else:  # a second subscriber connection: count into the same counter
            counter = RtpCounter(pc)
            counter.streams = self.counter.streams
            self.extra_counters.append(counter)
        original = pc.setRemoteDescription

        async def set_remote(desc: Any) -> None:
            await original(desc)
            counter.hook()

        pc.setRemoteDescription = set_remote  # type: ignore[method-assign]
        return await janus_subscribe(self.session, room, feeds, pc)

    async def add_feeds(self, room: int, feeds: list[int]) -> None:
        """Receive ``feeds`` too, as a VideoRoom client does when publishers arrive: the
        first call joins one multistream subscription, later ones ``update`` it (Janus
        offers again, the bot answers with ``start``), one renegotiation at a time. A
        subscription whose connection has closed (an overloaded machine) is made again
        with every feed, as a client would (counted in ``resubscribes``)."""
        from aiortc.exceptions import InvalidStateError

        from .janus import JanusError

        if not feeds:
            return
        async with self._sub_lock:
            known = self._sub_feeds
            known += [f for f in feeds if f not in known]
            handle = self._sub_handle
            if handle is not None:
                try:
                    await self._update(handle, feeds)
                    return
                except (InvalidStateError, JanusError, ConnectionError, TimeoutError):
                    self.resubscribes += 1
                    with contextlib.suppress(Exception):
                        await self.session.detach(handle)
                    with contextlib.suppress(Exception):
                        await self.pcs[-1].close()
            self._sub_handle = await self.subscribe(room, list(known))

    async def _update(self, handle: int, feeds: list[int]) -> None:
        from aiortc.exceptions import InvalidStateError

        from .janus import JanusError, _jsep

        pc = self.pcs[-1]
        if pc.signalingState == "closed" or pc.connectionState in ("failed", "closed"):
            raise InvalidStateError("the subscriber connection has closed")
        data, offer = await self.session.message(
            handle, {"request": "update", "subscribe": [{"feed": f} for f in feeds]}
        )
        if offer is None:  # the renegotiation's offer follows as an event
            event = await self.session.wait_event(handle, lambda ev: bool(ev.get("jsep")))
            offer = event["jsep"]
        if offer is None:
            raise JanusError(0, f"update returned no offer: {data}")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type=offer["type"]))
        await pc.setLocalDescription(await pc.createAnswer())
        await self.session.message(handle, {"request": "start"}, _jsep(pc.localDescription))

    def counters(self) -> list[RtpCounter]:
        return [c for c in [self.counter, *self.extra_counters] if c]

    async def close(self) -> None:
        if self.pump is not None:
            await self.pump.stop()
        for pc in self.pcs:
            with contextlib.suppress(Exception):
                await pc.close()
        with contextlib.suppress(Exception):
            await self.session.close()


def counters_of(people: list[Participant]) -> list[RtpCounter]:
    out: list[RtpCounter] = []
    for p in people:
        if isinstance(p, JanusParticipant):
            out.extend(p.counters())
        elif p.counter is not None:
            out.append(p.counter)
    return out


# ----------------------------------------------------------------- measuring


async def measure(
    people: list[Participant],
    server_pid: int,
    window: float,
    expected_streams: int,
    windows: int = 1,
) -> dict[str, Any]:
    """Wait until every expected stream arrives (bounded), then measure ``windows``
    consecutive windows; returns the per-window results under "windows"."""

    def streams_flowing() -> int:
        # subscriber connections appear with their first offer: look again each time
        total = 0
        for c in counters_of(people):
            if not c.recording:
                c.start_window()
            total += len(c.streams)
        return total

    bot_address = BOT_ADDRESS
    # decrypt about 32 streams' worth of packets for the latency, whatever the size
    RtpCounter.sample_every = max(1, expected_streams // 32)
    complete = True
    try:
        await bounded(
            f"{expected_streams} streams flowing",
            lambda: streams_flowing() >= expected_streams,
            SETUP_TIMEOUT,
        )
    except TimeoutError:
        complete = False  # overloaded: measure what flows and say so
    await asyncio.sleep(1.0)  # settle (keyframes, REMB, ...)
    counters = counters_of(people)
    results = []
    for _ in range(windows):
        for c in counters:
            c.start_window()
        drops0 = udp_drops_by_address()
        bots0, bwait0 = cpu_seconds(os.getpid()), run_delay_seconds(os.getpid())
        swait0 = run_delay_seconds(server_pid)
        cpu0, t0 = cpu_seconds(server_pid), time.monotonic()
        await asyncio.sleep(window)
        cpu1, t1 = cpu_seconds(server_pid), time.monotonic()
        swait1 = run_delay_seconds(server_pid)
        bots1, bwait1 = cpu_seconds(os.getpid()), run_delay_seconds(os.getpid())
        drops = udp_drops_by_address()
        drops.subtract(drops0)
        for c in counters:
            c.stop_window()
        received = expected = 0
        lat: list[int] = []
        for c in counters:
            r, e, lt = c.summary()
            received += r
            expected += e
            lat.extend(lt)
        elapsed = t1 - t0
        cpu_us = (cpu1 - cpu0) * 1e6
        results.append(
            {
                "us_per_forwarded_packet": cpu_us / received if received else float("nan"),
                "forwarded_pps": received / elapsed,
                "latency_ms_p50": percentile(lat, 0.5) / 1000,
                "latency_ms_p99": percentile(lat, 0.99) / 1000,
                # to when the bots read the packets (before session 6: the latency figure)
                "read_latency_ms_p99": percentile(
                    [v for c in counters for v in c.read_latencies()], 0.99
                )
                / 1000,
                "loss_pct": 100.0 * max(0, expected - received) / expected if expected else 0.0,
                "server_cpu_pct": 100.0 * (cpu1 - cpu0) / elapsed,
                # the bots' own process: near 100 % means they cannot keep up
                "bots_cpu_pct": 100.0 * (bots1 - bots0) / elapsed,
                # runnable but not running (the machine's other work, or each other)
                "server_wait_pct": 100.0 * (swait1 - swait0) / elapsed,
                # receive-buffer drops in the window, by side (whose loss it is)
                "drops_at_bots": max(0, drops[bot_address]),
                "drops_at_server": max(0, sum(v for k, v in drops.items() if k != bot_address)),
                "bots_wait_pct": 100.0 * (bwait1 - bwait0) / elapsed,
                "latency_samples": len(lat),
                "streams": sum(len(c.streams) for c in counters),
                "ssrcs_seen": sum(len(c.seen) for c in counters),
                "ssrcs_ignored": sum(len(c._ignored) for c in counters),
                "undecryptable": sum(c.undecryptable for c in counters),
                "expected_streams": expected_streams,
                "setup_complete": complete,
            }
        )
    return {"windows": results}


#: The steps of a publishing bot's join, as (name, the mark that ends it): the join
#: request answered; the publish offer made (ICE gathering); the server's answer (its
#: SDP work and queue); the answer applied; ICE checks done; DTLS done (connected).
JOIN_STEPS = (
    ("join", "joined"),
    ("offer", "offer_made"),
    ("answer", "answered"),
    ("apply", "answer_applied"),
    ("ice", "ice_connected"),
    ("dtls", "connected"),
)


def join_steps(people: list[OurParticipant]) -> dict[str, list[float]]:
    """Per step of the join: [median, max] in ms over the bots that went through it."""
    took: dict[str, list[float]] = {}
    for p in people:
        previous = 0.0  # a step runs from the last mark the bot reached before it
        for name, mark in JOIN_STEPS:
            if mark in p.phases:
                took.setdefault(name, []).append(p.phases[mark] - previous)
                previous = p.phases[mark]
    return {
        name: [round(statistics.median(took[name]) * 1000, 1), round(max(took[name]) * 1000, 1)]
        for name, _ in JOIN_STEPS
        if name in took
    }


# ----------------------------------------------------------------- scenarios


async def scenario_fanout(args: argparse.Namespace) -> dict[str, Any]:
    """1 publisher (audio + video) -> N subscribers."""
    n = args.size
    rss0 = rss_bytes(args.server_pid)
    people: list[Participant] = []
    joins0 = await scrape_buckets(metrics_url(args.url)) if args.system == "mediaserver" else {}
    try:
        if args.system == "mediaserver":
            room = f"fanout-{n}-{os.getpid()}"
            pub = OurParticipant(args.url, "pub")
            await pub.join(room, publish=True, subscribe=False)
            people.append(pub)
            subs = [OurParticipant(args.url, f"sub{i}") for i in range(n)]
            await asyncio.gather(*(s.join(room, publish=False, subscribe=True) for s in subs))
            people += subs
        else:
            room_id = 1000 + n + os.getpid() % 1000 * 1000
            pub_j = JanusParticipant(args.url, "pub")
            await pub_j.join(room_id, publish=True)
            people.append(pub_j)
            assert pub_j.feed_id is not None
            subs_j = [JanusParticipant(args.url, f"sub{i}") for i in range(n)]
            await asyncio.gather(*(s.join(room_id, publish=False) for s in subs_j))
            await asyncio.gather(*(s.subscribe(room_id, [pub_j.feed_id]) for s in subs_j))
            people += subs_j
        result = await measure(
            people, args.server_pid, args.window, expected_streams=2 * n, windows=args.windows
        )
        result["memory_per_participant_kb"] = (rss_bytes(args.server_pid) - rss0) / (n + 1) / 1024
        result["join_ms_p50"] = statistics.median(p.join_seconds for p in people) * 1000
        result["join_ms_p99"] = percentile([int(p.join_seconds * 1e6) for p in people], 0.99) / 1000
        if args.system == "mediaserver":
            result.update(await server_join_figures(args.url, joins0))
        return result
    finally:
        await asyncio.gather(*(p.close() for p in people), return_exceptions=True)


async def scenario_fullroom(args: argparse.Namespace) -> dict[str, Any]:
    """N participants, each publishes audio + video and receives everyone else."""
    n = args.size
    rss0 = rss_bytes(args.server_pid)
    people: list[Participant] = []
    joins0 = await scrape_buckets(metrics_url(args.url)) if args.system == "mediaserver" else {}
    try:
        if args.system == "mediaserver":
            room = f"full-{n}-{os.getpid()}"
            ours = [OurParticipant(args.url, f"p{i}") for i in range(n)]
            phase = JoinPhase(args.server_pid)
            for p in ours:  # one after another, like people arriving
                await p.join(room, publish=True, subscribe=True)
            people += ours
            arrivals = phase.end()
        else:
            room_id = 500000 + n + os.getpid() % 1000 * 1000
            js = [JanusParticipant(args.url, f"p{i}") for i in range(n)]
            phase = JoinPhase(args.server_pid)
            # like people arriving, as with ours: each newcomer publishes; then (not
            # awaited before the next arrival, as our server's renegotiations are not)
            # everyone already there adds its feed and it subscribes to theirs
            renegotiations: list[asyncio.Task[None]] = []
            for i, p in enumerate(js):
                await p.join(room_id, publish=True)
                assert p.feed_id is not None
                renegotiations += [
                    asyncio.ensure_future(q.add_feeds(room_id, [p.feed_id])) for q in js[:i]
                ]
                earlier = [q.feed_id for q in js[:i] if q.feed_id is not None]
                renegotiations.append(asyncio.ensure_future(p.add_feeds(room_id, earlier)))
            people += js
            arrivals = phase.end()
            await asyncio.gather(*renegotiations)
        result = await measure(
            people,
            args.server_pid,
            args.window,
            expected_streams=2 * n * (n - 1),
            windows=args.windows,
        )
        result["memory_per_participant_kb"] = (rss_bytes(args.server_pid) - rss0) / n / 1024
        result.update(arrivals)
        if args.system == "mediaserver":
            ours_ = [p for p in people if isinstance(p, OurParticipant)]
            result["join_steps_ms"] = join_steps(ours_)
        result["publish_busy_retries"] = sum(p.busy_retries for p in people)
        if args.system == "janus":  # subscriptions made again after their connection closed
            result["resubscribes"] = sum(
                p.resubscribes for p in people if isinstance(p, JanusParticipant)
            )
        if args.system == "mediaserver":  # where streams are missing: offers or media
            subs = [p.client.subscriber for p in people if isinstance(p, OurParticipant)]
            result["tracks_offered"] = sum(
                len(p.client._track_map) for p in people if isinstance(p, OurParticipant)
            )
            result["subscribers_connected"] = sum(
                1 for pc in subs if pc is not None and pc.connectionState == "connected"
            )
            if result["subscribers_connected"] < len(subs):
                result["subscriber_states"] = [
                    f"{i}:{pc.connectionState}/{pc.iceConnectionState}/{pc.signalingState}/"
                    f"{len(pc.getTransceivers())}"
                    if pc is not None
                    else f"{i}:none"
                    for i, pc in enumerate(subs)
                ]
        joins = [int(p.join_seconds * 1e6) for p in people]
        result["join_ms_p50"] = percentile(joins, 0.5) / 1000
        result["join_ms_p99"] = percentile(joins, 0.99) / 1000
        if args.system == "mediaserver":
            result.update(await server_join_figures(args.url, joins0))
        return result
    finally:
        await asyncio.gather(*(p.close() for p in people), return_exceptions=True)


async def scenario_churn(args: argparse.Namespace) -> dict[str, Any]:
    """A running room of N audio publishers; one person joins and one leaves every
    second for the window; join latency of the churners."""
    n = args.size
    people: list[Participant] = []
    joins: list[int] = []
    try:

        async def make(i: int) -> Participant:
            if args.system == "mediaserver":
                p: Participant = OurParticipant(args.url, f"c{i}")
                await p.join(room, publish=True, subscribe=True, video=False)  # type: ignore[attr-defined]
            else:
                p = JanusParticipant(args.url, f"c{i}")
                await p.join(room_id, publish=True, video=False)  # type: ignore[attr-defined]
            return p

        room = f"churn-{n}-{os.getpid()}"
        room_id = 900000 + n + os.getpid() % 1000 * 1000
        for i in range(n):
            people.append(await make(i))
        ours = args.system == "mediaserver"
        joins0 = await scrape_buckets(metrics_url(args.url)) if ours else {}
        cpu0, t0 = cpu_seconds(args.server_pid), time.monotonic()
        counter = n
        end = time.monotonic() + args.window
        while time.monotonic() < end:
            tick = time.monotonic()
            newcomer = await make(counter)
            joins.append(int(newcomer.join_seconds * 1e6))
            counter += 1
            people.append(newcomer)
            leaver = people.pop(0)
            await leaver.close()
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
        cpu1, t1 = cpu_seconds(args.server_pid), time.monotonic()
        return {
            "us_per_forwarded_packet": float("nan"),
            "forwarded_pps": float("nan"),
            "latency_ms_p50": float("nan"),
            "latency_ms_p99": float("nan"),
            "loss_pct": float("nan"),
            "join_ms_p50": percentile(joins, 0.5) / 1000,
            "join_ms_p99": percentile(joins, 0.99) / 1000,
            "churn_per_second": len(joins) / (t1 - t0),
            "server_cpu_pct": 100.0 * (cpu1 - cpu0) / (t1 - t0),
            **(await server_join_figures(args.url, joins0) if ours else {}),
        }
    finally:
        await asyncio.gather(*(p.close() for p in people), return_exceptions=True)


async def scenario_linkapi(args: argparse.Namespace) -> dict[str, Any]:
    """Mint + get links with a bounded number of concurrent requests."""
    import aiohttp

    base = args.url.replace("ws://", "http://").rsplit("/ws", 1)[0]
    key = args.api_key
    total = args.size
    concurrency = 16
    lat: list[int] = []
    sem = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {key}"}
    errors = 0
    async with aiohttp.ClientSession(headers=headers) as session:

        async def one(i: int) -> None:
            nonlocal errors
            async with sem:
                started = time.monotonic_ns()
                body = {
                    "event": {
                        "id": f"bench-{os.getpid()}-{i}",
                        "start": "2030-01-01T10:00:00Z",
                        "end": "2030-01-01T11:00:00Z",
                        "summary": "bench",
                    }
                }
                async with session.post(base + "/v1/links", json=body) as r:
                    link = await r.json()
                    if r.status != 201:
                        errors += 1
                        return
                async with session.get(base + f"/v1/links/{link['id']}") as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
                lat.append((time.monotonic_ns() - started) // 1000)

        cpu0, t0 = cpu_seconds(args.server_pid), time.monotonic()
        await asyncio.gather(*(one(i) for i in range(total)))
        cpu1, t1 = cpu_seconds(args.server_pid), time.monotonic()
    return {
        "us_per_forwarded_packet": float("nan"),
        "forwarded_pps": float("nan"),
        "latency_ms_p50": percentile(lat, 0.5) / 1000,
        "latency_ms_p99": percentile(lat, 0.99) / 1000,
        "loss_pct": 100.0 * errors / total,
        "requests_per_second": 2 * len(lat) / (t1 - t0),
        "server_cpu_us_per_request": (cpu1 - cpu0) * 1e6 / max(1, 2 * len(lat)),
    }


async def scenario_abuse(args: argparse.Namespace) -> dict[str, Any]:
    """A meeting under attack (loadtests/abuse.py; ours only)."""
    from .abuse import scenario_abuse as run

    return await run(args)


async def scenario_grid(args: argparse.Namespace) -> dict[str, Any]:
    """N participants with one large and N-2 small tiles each (loadtests/grid.py)."""
    from .grid import scenario_grid as run

    return await run(args)


SCENARIOS: dict[str, Callable[[argparse.Namespace], Awaitable[dict[str, Any]]]] = {
    "fanout": scenario_fanout,
    "fullroom": scenario_fullroom,
    "churn": scenario_churn,
    "linkapi": scenario_linkapi,
    "abuse": scenario_abuse,
    "grid": scenario_grid,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--system", choices=["mediaserver", "janus"], required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--windows", type=int, default=1, help="consecutive measurements")
    parser.add_argument("--ice-address", default="10.77.0.2")
    parser.add_argument("--api-key", default="")
    parser.add_argument(
        "--server-config",
        default=None,
        help="mediaserver's config: room tokens are signed "
        "with its linkapi.token_secret (mediaserver needs rooms.adhoc = true)",
    )
    args = parser.parse_args()
    if args.server_config:
        global TOKEN_SECRET
        TOKEN_SECRET = load_config(args.server_config, env={}).linkapi.token_secret.encode()
    configure_ice_addresses([args.ice_address])
    global BOT_ADDRESS
    BOT_ADDRESS = args.ice_address
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def run() -> dict[str, Any]:
        return await asyncio.wait_for(SCENARIOS[args.scenario](args), 300)

    result = asyncio.run(run())
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
