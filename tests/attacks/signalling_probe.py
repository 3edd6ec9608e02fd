"""Tools for the signalling attack tests (and for measuring them by hand).

- :func:`server_process`: ``mediaserver serve`` as a real process on a free port.
- :class:`MediaPair`: a publisher pumping RTP (no encoder, ``loadtests.rtp``) and a
  subscriber whose every packet arrival is recorded (no decoder), so a test can ask how
  many packets arrived in a window and a benchmark can ask for the longest gap.
- :class:`RawConn`: a bare WebSocket speaking signalling v1, for hostile clients.
- :func:`bomb_offer`: a publish offer with many (inactive) m-lines.

Run as a script to measure the SDP bomb and the ping flood against a real server:

    .venv/bin/python -m tests.attacks.signalling_probe
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiortc import RTCPeerConnection

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for `python -m`
from server_helpers import ADHOC_ENV, clean_env, free_port, join_room, room_token, spawn_server

from loadtests.rtp import RtpPump
from mediaserver.client.sdk import MeetingClient
from mediaserver.sfu.peer import IdleTrack

REPO = Path(__file__).resolve().parents[2]


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    metrics_port: int = 0

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def log_events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out


@contextlib.asynccontextmanager
async def server_process(
    tmp: Path, toml: str = "", *, config: Path | None = None, env: dict[str, str] | None = None
) -> AsyncIterator[ServerProcess]:
    """Start ``mediaserver serve``; ``toml`` is appended to a minimal config file
    (or ``config`` is used as it is, with the port and data directory from ``env``)."""
    port = free_port()
    metrics_port = free_port()
    if config is None:
        config = tmp / "config.toml"
        config.write_text(
            f'[rtc]\nice_addresses = ["127.0.0.1"]\n[state]\nbackend = "memory"\n{toml}\n'
        )
    full_env = clean_env(
        ADHOC_ENV,  # room joins with room tokens (tests/server_helpers.py)
        {
            "MEDIASERVER_SERVER_PORT": str(port),
            "MEDIASERVER_STATE_DATA_DIR": str(tmp / "data"),
            "MEDIASERVER_LOGGING_FORMAT": "json",
        },
        env or {},
    )
    full_env = {k: v.replace("{metrics_port}", str(metrics_port)) for k, v in full_env.items()}
    log = tmp / f"server-{port}.log"
    proc = spawn_server(config, log, full_env)
    server = ServerProcess(proc, port, log, metrics_port)
    try:
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as s:
            while True:
                assert proc.poll() is None, f"server exited: {log.read_text()[-2000:]}"
                try:
                    async with s.get(server.http_url + "/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, "server did not start"
                await asyncio.sleep(0.1)
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                await asyncio.get_running_loop().run_in_executor(None, proc.wait, 15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass
class Arrivals:
    """Arrival times (event-loop clock) of every RTP packet at a subscriber."""

    times: list[float] = field(default_factory=list)
    hooked: set[int] = field(default_factory=set)
    #: arrival times per subscriber peer connection, in the order they appeared
    by_connection: dict[int, list[float]] = field(default_factory=dict)

    def hook(self, pc: RTCPeerConnection) -> None:
        loop = asyncio.get_running_loop()
        mine = self.by_connection.setdefault(id(pc), [])
        for t in pc.getTransceivers():
            dtls = t.receiver.transport
            if dtls is None or id(dtls) in self.hooked:
                continue
            self.hooked.add(id(dtls))

            async def on_rtp(data: bytes, arrival_time_ms: int, mine: list[float] = mine) -> None:
                now = loop.time()
                self.times.append(now)
                mine.append(now)

            dtls._handle_rtp_data = on_rtp

    def count(self, start: float, end: float) -> int:
        return sum(1 for t in self.times if start <= t < end)

    def longest_gap(self, start: float, end: float) -> float:
        inside = [t for t in self.times if start <= t <= end]
        points = [start, *inside, end]
        return max(b - a for a, b in itertools.pairwise(points))


class MediaPair:
    """A publisher pumping audio+video RTP and a subscriber recording arrivals."""

    def __init__(self, ws_url: str, room: str) -> None:
        self.ws_url = ws_url
        self.room = room
        self.publisher = MeetingClient(ws_url, name="pub", ice_addresses=["127.0.0.1"])
        self.subscriber = MeetingClient(ws_url, name="sub", ice_addresses=["127.0.0.1"])
        self.arrivals = Arrivals()
        self.subscriber.subscriber_hook = self.arrivals.hook
        self.pump: RtpPump | None = None

    async def start(self) -> None:
        await self.subscriber.connect()
        await join_room(self.subscriber, self.room)
        await self.publisher.connect()
        await join_room(self.publisher, self.room)
        await self.publisher.publish([IdleTrack("audio"), IdleTrack("video")])
        pc = self.publisher.publisher
        assert pc is not None
        await wait_until(lambda: pc.connectionState == "connected", 20)
        self.pump = RtpPump(pc)
        self.pump.start()
        await wait_until(lambda: len(self.arrivals.times) > 50, 20)

    async def close(self) -> None:
        if self.pump is not None:
            await self.pump.stop()
        for c in (self.publisher, self.subscriber):
            with contextlib.suppress(Exception):
                await c.close()


async def wait_until(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.05)


class RawConn:
    """A bare signalling WebSocket (hostile clients speak the protocol by hand)."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse):
        self.session = session
        self.ws = ws

    @classmethod
    async def open(cls, url: str, *, room: str | None = None, name: str = "x") -> RawConn:
        session = aiohttp.ClientSession()
        try:
            ws = await session.ws_connect(url, max_msg_size=4 << 20)
        except Exception:
            await session.close()
            raise
        conn = cls(session, ws)
        await conn.send({"type": "hello", "version": 1, "id": "h"})
        assert (await conn.recv_type("welcome", "error"))["type"] == "welcome"
        if room is not None:
            token = room_token(room, name)
            await conn.send({"type": "join", "room": room, "token": token, "id": "j"})
            reply = await conn.recv_type("joined", "error")
            assert reply["type"] == "joined", reply
        return conn

    async def send(self, payload: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(payload))

    async def recv(self, timeout: float = 10.0) -> dict[str, Any] | None:
        """The next message, or None once the socket is closed."""
        msg = await self.ws.receive(timeout=timeout)
        if msg.type != aiohttp.WSMsgType.TEXT:
            return None
        data: dict[str, Any] = json.loads(msg.data)
        return data

    async def recv_type(self, *types: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next message of one of ``types`` (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            msg = await self.recv(max(0.01, deadline - time.monotonic()))
            if msg is None:
                raise ConnectionError("closed")
            if msg["type"] in types:
                return msg

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        await self.session.close()


_FINGERPRINT = ":".join(["AB"] * 32)


def bomb_offer(mlines: int, *, direction: str = "inactive", mid_of: Any = str) -> str:
    """A syntactically valid publish offer with ``mlines`` audio m-lines."""
    head = [
        "v=0",
        "o=- 1 1 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        f"a=fingerprint:sha-256 {_FINGERPRINT}",
        "a=ice-ufrag:abcd",
        "a=ice-pwd:abcdefghijklmnopqrstuvwx",
        "a=setup:actpass",
    ]
    body = []
    for i in range(mlines):
        body += [
            "m=audio 9 UDP/TLS/RTP/SAVPF 0",
            f"a=mid:{mid_of(i)}",
            f"a={direction}",
            "a=rtcp-mux",
            "a=rtpmap:0 PCMU/8000",
        ]
    # (LF line ends: aiortc accepts them, and they keep 700 m-lines under 64 KiB of JSON)
    return "\n".join(head + body) + "\n"


_FLOOD = """
import asyncio, json, sys, aiohttp
async def main(url):
    async with aiohttp.ClientSession() as s, s.ws_connect(url) as ws:
        await ws.send_str(json.dumps({"type": "hello", "version": 1}))
        join = {"type": "join", "room": "flood", "token": sys.argv[2]}
        await ws.send_str(json.dumps(join))
        for i in range(20000):
            await ws.send_str(json.dumps({"type": "ping", "id": i}))
        got = {}
        async for msg in ws:
            data = json.loads(msg.data)
            key = data.get("code", data["type"])
            got[key] = got.get(key, 0) + 1
            if got.get("pong", 0) + got.get("rate_limited", 0) >= 20000:
                break
        print(json.dumps(got))
asyncio.run(main(sys.argv[1]))
"""


async def _measure(tmp: Path) -> None:  # pragma: no cover - a manual benchmark
    async with server_process(tmp) as server:
        pair = MediaPair(server.ws_url, "victims")
        await pair.start()
        loop = asyncio.get_running_loop()
        try:
            # 1. SDP bomb: 20 connections, one 700-m-line publish each
            conns = [await RawConn.open(server.ws_url, room=f"bomb{i}") for i in range(20)]
            await asyncio.sleep(1.0)
            start = loop.time()
            offer = bomb_offer(700)
            health_worst = 0.0

            async def health() -> None:
                nonlocal health_worst
                async with aiohttp.ClientSession() as s:
                    for _ in range(40):
                        t0 = time.monotonic()
                        async with s.get(server.http_url + "/healthz") as r:
                            await r.read()
                        health_worst = max(health_worst, time.monotonic() - t0)
                        await asyncio.sleep(0.1)

            htask = asyncio.ensure_future(health())
            await asyncio.gather(*(c.send({"type": "publish", "sdp": offer}) for c in conns))
            replies = await asyncio.gather(
                *(c.recv_type("publish_answer", "error", timeout=60) for c in conns)
            )
            refused = loop.time() - start
            await htask
            end = loop.time()
            codes = sorted({r.get("code", r["type"]) for r in replies})
            print(
                f"sdp bomb: replies {codes} after {refused:.2f}s; longest media gap "
                f"{pair.arrivals.longest_gap(start, end):.3f}s; worst /healthz {health_worst:.3f}s"
            )
            for c in conns:
                await c.close()
            await asyncio.sleep(1.0)
            # 2. ping flood: 20,000 pings on one connection, from another process (so
            # that the flooder's own loop does not delay our subscriber's receipts)
            start = loop.time()
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _FLOOD,
                server.ws_url,
                room_token("flood", "f"),
                stdout=asyncio.subprocess.PIPE,
            )
            out, _ = await proc.communicate()
            await asyncio.sleep(0.5)
            end = loop.time()
            print(
                f"ping flood: replies {out.decode().strip()}; longest media gap "
                f"{pair.arrivals.longest_gap(start, end):.3f}s"
            )
        finally:
            await pair.close()


if __name__ == "__main__":  # pragma: no cover
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        asyncio.run(_measure(Path(d)))
