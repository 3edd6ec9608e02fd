"""One UDP port for all media (`rtc.udp_port`): in process, and as a real server process
whose open file descriptors are counted."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiortc import sdp as aiortc_sdp
from media import COLOURS, ColourTrack, ToneTrack, receive_frames
from server_helpers import TOKEN_SECRET, free_port, join_room, spawn_server, wait_healthy
from test_media import check_everyone_sees_everyone, join_and_publish

from mediaserver.client.sdk import MeetingClient
from mediaserver.sfu.peer import configure_ice_addresses

pytestmark = pytest.mark.integration


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_ports(client: MeetingClient) -> set[int]:
    ports: set[int] = set()
    for pc in (client.publisher, client.subscriber):
        assert pc is not None and pc.remoteDescription is not None
        remote = aiortc_sdp.SessionDescription.parse(pc.remoteDescription.sdp)
        ports |= {cand.port for m in remote.media for cand in m.ice_candidates}
    return ports


async def test_every_peer_connection_shares_the_port_in_process(clients):
    from server_helpers import make_config, start_server

    from mediaserver.sfu.peer import configure_udp_mux

    port = free_udp_port()
    config = make_config()
    config = dataclasses.replace(config, rtc=dataclasses.replace(config.rtc, udp_port=port))
    srv = await start_server(config)
    from mediaserver.sfu import fastpath

    before = fastpath.status()
    try:
        await join_and_publish(srv, clients, 3, room="muxed")
        await check_everyone_sees_everyone(clients)
        for c in clients:
            assert _server_ports(c) == {port}
        if fastpath.PATH == "native":
            # Both subscribers' copies of a packet leave in one sendmmsg on the shared
            # socket (2 packets per call; the first packets of each go through Python).
            def since_before(key: str) -> int:
                return int(str(fastpath.status()[key])) - int(str(before[key]))

            # counted once enough have flowed (how many had when every client saw
            # everyone depends on the machine's speed: 94 was seen)
            for _ in range(200):
                if since_before("native_packets") > 100:
                    break
                await asyncio.sleep(0.05)
            packets, calls = since_before("native_packets"), since_before("native_sendmmsg_calls")
            assert packets > 100 and calls < 0.75 * packets, (packets, calls)
        # One leaves: its agents are unregistered, the shared socket stays open for the rest.
        import aioice.ice
        from aiortc import rtcicetransport

        mux = rtcicetransport.Connection.mux  # type: ignore[attr-defined]
        assert mux is not None and mux.agents == 6
        await clients[0].close()
        await clients[1].wait_for(lambda: len(clients[1].live_tracks()) == 2, timeout=15)
        await asyncio.sleep(0.5)
        assert mux.agents == 4
        assert mux.sockets["127.0.0.1"].transport is not None
        assert not mux.sockets["127.0.0.1"].transport.is_closing()
        for t in clients[1].live_tracks():
            await receive_frames(t.track, 5, timeout=10)
        assert aioice.ice.Connection is not rtcicetransport.Connection
    finally:
        await srv.runner.cleanup()
        configure_udp_mux(None)


def _udp_sockets_of(pid: int) -> list[int]:
    """Local ports of the UDP sockets process ``pid`` holds (from /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = []
    for table in ("udp", "udp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _write_config(
    tmp_path: Path, http_port: int, udp_port: int, ice: str = '"127.0.0.1"', extra: str = ""
) -> Path:
    config = tmp_path / f"config-{http_port}.toml"
    config.write_text(
        f"""
[server]
port = {http_port}
shutdown_grace_seconds = 3.0
[rtc]
ice_addresses = [{ice}]
udp_port = {udp_port}
{extra}
[state]
backend = "memory"
[logging]
format = "json"
[rooms]
adhoc = true
[linkapi]
token_secret = "{TOKEN_SECRET}"
"""
    )
    return config


@contextlib.asynccontextmanager
async def _meeting_process(
    tmp_path: Path, udp_port: int, *, client_ice: str = "127.0.0.1", **config: str
) -> AsyncIterator[tuple[subprocess.Popen[bytes], Callable[..., Awaitable[MeetingClient]]]]:
    """A `mediaserver serve` process; ``add(name, room, tracks)`` joins a publishing client."""
    http_port = free_port()
    proc = spawn_server(
        _write_config(tmp_path, http_port, udp_port, **config), tmp_path / "server.log"
    )
    clients: list[MeetingClient] = []

    async def add(name: str, room: str, tracks: list[Any]) -> MeetingClient:
        c = MeetingClient(f"ws://127.0.0.1:{http_port}/ws", name=name, ice_addresses=[client_ice])
        clients.append(c)
        await c.connect()
        await join_room(c, room)
        await c.publish(tracks)
        return c

    try:
        await wait_healthy(f"http://127.0.0.1:{http_port}", proc)
        yield proc, add
    finally:
        for c in clients:
            await c.close()
        proc.terminate()
        await asyncio.get_running_loop().run_in_executor(None, proc.wait, 15)
        configure_ice_addresses(["127.0.0.1"])  # the clients set it process-wide


async def test_twenty_peer_connections_over_one_port_and_socket(tmp_path: Path):
    """10 participants in 5 rooms of two: 20 peer connections (publisher + subscriber
    each), media both ways, all on one UDP port; the server holds one UDP socket."""
    udp_port = free_udp_port()
    async with _meeting_process(tmp_path, udp_port) as (proc, add):
        clients = []
        for i in range(10):
            tracks = [ToneTrack(300 + 50 * i)] + ([ColourTrack(COLOURS[i % 2])] if i < 2 else [])
            clients.append(await add(f"p{i}", f"room{i // 2}", tracks))
        for i, c in enumerate(clients):
            expected = 2 if i // 2 == 0 else 1
            for t in await c.wait_for_tracks(expected, timeout=30):
                await receive_frames(t.track, 5, timeout=15)
            assert _server_ports(c) == {udp_port}
        connected = [
            pc.connectionState for c in clients for pc in (c.publisher, c.subscriber) if pc
        ]
        assert connected == ["connected"] * 20
        assert _udp_sockets_of(proc.pid) == [udp_port]


async def test_a_second_process_refuses_a_taken_port(tmp_path: Path):
    udp_port = free_udp_port()
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.bind(("127.0.0.1", udp_port))
    try:
        log = tmp_path / "second.log"
        proc = spawn_server(_write_config(tmp_path, free_port(), udp_port), log)
        code = await asyncio.get_running_loop().run_in_executor(None, proc.wait, 30)
    finally:
        holder.close()
    text = log.read_text()
    assert code == 2, text
    assert f"start-up error: cannot bind the media port udp 127.0.0.1:{udp_port}" in text
    assert "rtc.udp_port" in text and "Traceback" not in text


async def test_dual_stack_one_port_per_family_and_announced_mapping(tmp_path: Path):
    """Host candidates on IPv4 and IPv6 (one socket each, same port); an IPv6-only
    client connects; rtc.announced_addresses maps 127.0.0.2 (a second, unused
    IPv4 address) while the others are announced as they are."""
    udp_port = free_udp_port()
    async with _meeting_process(
        tmp_path,
        udp_port,
        client_ice="::1",
        ice='"127.0.0.1", "::1", "127.0.0.2"',
        extra='announced_addresses = ["127.0.0.2=192.0.2.99"]',
    ) as (proc, add):
        clients = [await add(f"v6-{i}", "dual", [ToneTrack(400 + 100 * i)]) for i in range(2)]
        for c in clients:
            for t in await c.wait_for_tracks(1, timeout=30):
                await receive_frames(t.track, 5, timeout=15)
            sdp = c.publisher.remoteDescription.sdp
            hosts = {line.split()[4] for line in sdp.splitlines() if "typ host" in line}
            assert hosts == {"127.0.0.1", "::1", "192.0.2.99"}, sdp
        assert sorted(_udp_sockets_of(proc.pid)) == [udp_port] * 3
