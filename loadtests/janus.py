"""Janus (VideoRoom) as a benchmark baseline: config, process, WebSocket client, helpers.

* :func:`write_janus_config` / :func:`start_janus` run a private Janus 1.1 instance in a
  :class:`~loadtests.netns.BenchNetns` (Janus ignores loopback for ICE, hence the
  namespace), with only the VideoRoom plugin and the WebSockets transport loaded.
* :class:`JanusSession` is a small asyncio client for the Janus WebSocket API
  (transactions, keepalives, asynchronous events and trickle).
* :func:`create_room`, :func:`publish` and :func:`subscribe` drive aiortc peers.

Run ``python -m loadtests.janus --selftest`` as root for an end-to-end check.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.sdp import candidate_from_sdp

from .netns import BenchNetns

__all__ = [
    "JANUS_BIN",
    "JanusError",
    "JanusSession",
    "bot_configuration",
    "create_room",
    "janus_url",
    "publish",
    "start_janus",
    "stop_janus",
    "subscribe",
    "write_janus_config",
]

log = logging.getLogger(__name__)

JANUS_BIN = "/usr/bin/janus"
JANUS_LIB = Path("/usr/lib/x86_64-linux-gnu/janus")
PLUGIN = "janus.plugin.videoroom"
_PLUGIN_FILES = ("libjanus_videoroom.so",)
_TRANSPORT_FILES = ("libjanus_websockets.so",)
_SIDECAR = "bench.json"
LOG_FILE = "janus.log"
OUT_FILE = "janus.out"

#: VideoRoom error code for "room already exists".
ROOM_EXISTS = 427


# ---------------------------------------------------------------------------------------
# Configuration and process
# ---------------------------------------------------------------------------------------


def _jcfg(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))


def _section(name: str, items: dict[str, object]) -> str:
    body = "".join(f"\t{k} = {_jcfg(v)}\n" for k, v in items.items())
    return f"{name}: {{\n{body}}}\n"


def write_janus_config(
    directory: Path,
    *,
    server_ip: str,
    server_if: str,
    ws_port: int,
    event_loops: int,
    debug_level: int = 4,
    rtp_port_range: str | None = None,
    full_trickle: bool = False,
) -> Path:
    """Write a minimal Janus config into ``directory``; return the janus.jcfg path.

    Only the VideoRoom plugin and the WebSockets transport are loaded (private plugin
    and transport folders of symlinks), no admin API, no HTTP, no event handlers, no
    loggers, no STUN/TURN. ICE gathers only on ``server_if``; ``server_ip`` is both
    the SDP address and the WebSocket bind address. ``event_loops=0`` is Janus's
    default (one loop and thread per handle); ``1`` shares a single loop. With
    ``full_trickle`` Janus trickles its candidates instead of putting them in the SDP
    (half-trickle, the default); :class:`JanusSession` handles both.
    """
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    folders: dict[str, Path] = {}
    for sub, files in (
        ("plugins", _PLUGIN_FILES),
        ("transports", _TRANSPORT_FILES),
        ("events", ()),
        ("loggers", ()),
    ):
        folder = directory / sub
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir()
        for f in files:
            (folder / f).symlink_to(JANUS_LIB / sub / f)
        folders[sub] = folder

    general: dict[str, object] = {
        "configs_folder": str(directory),
        "plugins_folder": str(folders["plugins"]),
        "transports_folder": str(folders["transports"]),
        "events_folder": str(folders["events"]),
        "loggers_folder": str(folders["loggers"]),
        "log_to_stdout": False,
        "log_to_file": str(directory / LOG_FILE),
        "debug_level": debug_level,
        "debug_timestamps": True,
        "debug_colors": False,
        "interface": server_ip,
        "server_name": "msbench",
        "session_timeout": 60,
        "hide_dependencies": True,
    }
    if event_loops > 0:
        general["event_loops"] = event_loops
    media: dict[str, object] = {"ipv6": False, "no_media_timer": 1}
    if rtp_port_range:
        media["rtp_port_range"] = rtp_port_range
    nat: dict[str, object] = {
        "nice_debug": False,
        "ignore_mdns": True,
        "ice_enforce_list": server_if,
        "ice_ignore_list": "",
        "full_trickle": full_trickle,
    }
    main = directory / "janus.jcfg"
    main.write_text(
        _section("general", general)
        + "certificates: {\n}\n"
        + _section("media", media)
        + _section("nat", nat)
        + "plugins: {\n}\n"
        + "transports: {\n}\n"
        + "loggers: {\n}\n"
        + _section("events", {"broadcast": False})
    )
    (directory / "janus.plugin.videoroom.jcfg").write_text(
        _section("general", {"events": False, "string_ids": False})
    )
    (directory / "janus.transport.websockets.jcfg").write_text(
        _section(
            "general",
            {
                "events": False,
                "json": "compact",
                "ws": True,
                "ws_port": ws_port,
                "ws_ip": server_ip,
                "wss": False,
            },
        )
        + _section("admin", {"admin_ws": False, "admin_wss": False})
    )
    (directory / _SIDECAR).write_text(json.dumps({"ip": server_ip, "port": ws_port}))
    return main


def janus_url(directory: Path) -> str:
    """The WebSocket URL of the Janus configured in ``directory``."""
    info = json.loads((Path(directory) / _SIDECAR).read_text())
    return f"ws://{info['ip']}:{info['port']}/janus"


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _listening(pid: int, port: int) -> bool:
    """Whether process ``pid`` itself has a TCP socket listening on ``port``.

    Reads /proc/<pid>/net/tcp (the namespace of that process: no packet sent) and
    matches the socket inode against /proc/<pid>/fd, so another process listening on
    the same port in the same namespace does not count.
    """
    try:
        rows = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    inodes = set()
    for row in rows:
        fields = row.split()
        if len(fields) > 9 and fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:
            inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return False
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(fd) in inodes:
                return True
    return False


_CONNECT_PROBE = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2):
    pass
"""


def start_janus(
    netns: BenchNetns, directory: Path, cpu: int | None, *, timeout: float = 15.0
) -> subprocess.Popen[bytes]:
    """Start Janus (configured by :func:`write_janus_config`) in ``netns``, pinned to ``cpu``.

    Returns once the WebSocket port accepts connections (connect probe run inside the
    namespace); the time it took is logged and stored in ``proc.startup_seconds``.
    Raises ``RuntimeError`` with the log tail if Janus exits or is not ready in time.
    """
    directory = Path(directory).resolve()
    info = json.loads((directory / _SIDECAR).read_text())
    ip, port = str(info["ip"]), int(info["port"])
    cfg = directory / "janus.jcfg"
    (directory / LOG_FILE).unlink(missing_ok=True)
    argv = [JANUS_BIN, "-C", str(cfg), "-F", str(directory)]
    t0 = time.monotonic()
    with open(directory / OUT_FILE, "wb") as out:
        proc = subprocess.Popen(
            netns.cmd(argv, cpu),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=directory,
            start_new_session=True,
        )
    deadline = t0 + timeout

    def fail(why: str) -> RuntimeError:
        stop_janus(proc)
        return RuntimeError(
            f"janus {why}\n--- {OUT_FILE} ---\n{_tail(directory / OUT_FILE)}"
            f"\n--- {LOG_FILE} ---\n{_tail(directory / LOG_FILE)}"
        )

    while True:
        if proc.poll() is not None:
            raise fail(f"exited with code {proc.returncode} during startup")
        if time.monotonic() > deadline:
            raise fail(f"not accepting WebSocket connections after {timeout:.0f}s")
        if _listening(proc.pid, port):
            probe = subprocess.run(
                netns.cmd([sys.executable, "-c", _CONNECT_PROBE, ip, str(port)]),
                capture_output=True,
                timeout=5,
                check=False,
            )
            if probe.returncode == 0:
                break
        time.sleep(0.02)
    elapsed = time.monotonic() - t0
    proc.startup_seconds = elapsed  # type: ignore[attr-defined]
    log.info("janus ready on %s:%d after %.3fs (pid %d)", ip, port, elapsed, proc.pid)
    return proc


def stop_janus(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> int | None:
    """SIGTERM, then SIGKILL after ``timeout``; returns the exit code (idempotent)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    return proc.returncode


# ---------------------------------------------------------------------------------------
# WebSocket API client
# ---------------------------------------------------------------------------------------


class JanusError(RuntimeError):
    """A Janus core error or a plugin error reply."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"janus error {code}: {reason}")
        self.code = code
        self.reason = reason


Event = dict[str, Any]
Jsep = dict[str, Any]


class JanusSession:
    """One Janus session over one WebSocket (``janus-protocol``).

    ``await create()`` connects and creates the session; ``attach()`` returns handle
    ids; ``message()`` sends a plugin message and returns ``(data, jsep)`` of its
    reply (the synchronous ``success`` reply or, after the ``ack``, the plugin
    ``event``). Events without a transaction go to :attr:`events` (per handle) and to
    ``on_event`` callbacks; Janus's trickled candidates are added to the handle's
    peer connection (see :meth:`bind_pc`).
    """

    def __init__(
        self,
        url: str,
        *,
        keepalive: float = 25.0,
        timeout: float = 10.0,
        http: aiohttp.ClientSession | None = None,
    ) -> None:
        self.url = url
        self.keepalive_interval = keepalive
        self.timeout = timeout
        self.session_id: int | None = None
        #: per handle: asynchronous events (oldest dropped beyond max_queued_events).
        self.events: dict[int, asyncio.Queue[Event]] = {}
        self.max_queued_events = 256
        self.on_event: list[Callable[[Event], None]] = []
        self._http = http
        self._own_http = http is None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._pending: dict[str, asyncio.Future[Event]] = {}
        self._ack_final: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._pcs: dict[int, RTCPeerConnection] = {}
        self._early: dict[int, list[dict[str, Any]]] = {}
        #: publisher feed id -> its Janus handle (filled by :func:`publish`).
        self.handle_of: dict[int, int] = {}
        #: subscriber handle -> the streams of its join reply (mid, feed_id, type, ...)
        self.streams_of: dict[int, list[dict[str, Any]]] = {}
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------

    async def create(self) -> int:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        async with asyncio.timeout(self.timeout):
            self._ws = await self._http.ws_connect(
                self.url,
                protocols=["janus-protocol"],
                timeout=aiohttp.ClientWSTimeout(ws_close=self.timeout),
                heartbeat=None,
                max_msg_size=16 * 1024 * 1024,
            )
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._reader()))
        reply = await self._call({"janus": "create"}, session=False)
        self.session_id = int(reply["data"]["id"])
        self._tasks.append(loop.create_task(self._keepalive()))
        return self.session_id

    async def close(self) -> None:
        """Destroy the session (best effort) and close the socket (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._ws is not None and not self._ws.closed and self.session_id is not None:
            with contextlib.suppress(Exception):
                await self._call({"janus": "destroy"}, timeout=2.0)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._own_http and self._http is not None:
            await self._http.close()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("janus session closed"))
        self._pending.clear()

    async def __aenter__(self) -> JanusSession:
        await self.create()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- requests ------------------------------------------------------------------

    async def attach(self, plugin: str = PLUGIN) -> int:
        reply = await self._call({"janus": "attach", "plugin": plugin})
        handle = int(reply["data"]["id"])
        self.events[handle] = asyncio.Queue(self.max_queued_events)
        return handle

    async def detach(self, handle: int) -> None:
        await self._call({"janus": "detach", "handle_id": handle})
        self._pcs.pop(handle, None)
        self.events.pop(handle, None)

    async def hangup(self, handle: int) -> None:
        await self._call({"janus": "hangup", "handle_id": handle})

    async def message(
        self,
        handle: int,
        body: dict[str, Any],
        jsep: Jsep | None = None,
        *,
        timeout: float | None = None,
    ) -> tuple[dict[str, Any], Jsep | None]:
        """Send a plugin message; return the plugin's reply data and JSEP (if any).

        Raises :class:`JanusError` on a core error or a plugin ``error_code``.
        """
        msg: dict[str, Any] = {"janus": "message", "handle_id": handle, "body": body}
        if jsep is not None:
            msg["jsep"] = jsep
        reply = await self._call(msg, timeout=timeout)
        data: dict[str, Any] = reply.get("plugindata", {}).get("data", {})
        if "error_code" in data:
            raise JanusError(int(data["error_code"]), str(data.get("error", "")))
        return data, reply.get("jsep")

    async def trickle(self, handle: int, candidate: dict[str, Any]) -> None:
        msg = {"janus": "trickle", "handle_id": handle, "candidate": candidate}
        await self._call(msg, ack_final=True)

    async def trickle_completed(self, handle: int) -> None:
        await self.trickle(handle, {"completed": True})

    def bind_pc(self, handle: int, pc: RTCPeerConnection) -> None:
        """Route Janus's trickled candidates for ``handle`` to ``pc``."""
        self._pcs[handle] = pc

    async def flush_candidates(self, handle: int) -> None:
        """Add candidates that arrived before the remote description was set."""
        pc = self._pcs.get(handle)
        if pc is None or pc.remoteDescription is None:
            return
        for cand in self._early.pop(handle, []):
            await self._add_candidate(pc, cand)

    async def wait_event(
        self, handle: int, predicate: Callable[[Event], bool], timeout: float | None = None
    ) -> Event:
        """Wait (bounded) for an asynchronous event on ``handle`` matching ``predicate``."""
        queue = self.events[handle]
        async with asyncio.timeout(timeout or self.timeout):
            while True:
                ev = await queue.get()
                if predicate(ev):
                    return ev

    # -- internals -----------------------------------------------------------------

    async def _send(self, msg: dict[str, Any]) -> None:
        if self._ws is None or self._ws.closed:
            raise ConnectionError("janus websocket is not open")
        await self._ws.send_str(json.dumps(msg))

    async def _call(
        self,
        msg: dict[str, Any],
        *,
        session: bool = True,
        ack_final: bool = False,
        timeout: float | None = None,
    ) -> Event:
        """Send ``msg`` with a new transaction and wait (bounded) for its reply.

        The reply is ``success``/``error``, or for plugin messages handled
        asynchronously the ``event`` that follows the ``ack``; for keepalives and
        trickles (``ack_final``) the ``ack`` itself.
        """
        tx = secrets.token_hex(8)
        msg["transaction"] = tx
        if session:
            if self.session_id is None:
                raise RuntimeError("call create() first")
            msg["session_id"] = self.session_id
        fut: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._pending[tx] = fut
        if ack_final:
            self._ack_final.add(tx)
        try:
            await self._send(msg)
            async with asyncio.timeout(timeout or self.timeout):
                reply = await fut
        finally:
            self._pending.pop(tx, None)
            self._ack_final.discard(tx)
        if reply.get("janus") == "error":
            err = reply.get("error", {})
            raise JanusError(int(err.get("code", 0)), str(err.get("reason", "")))
        return reply

    async def _keepalive(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.keepalive_interval)
            try:
                await self._call({"janus": "keepalive"}, ack_final=True)
            except (ConnectionError, TimeoutError, JanusError) as exc:
                log.warning("janus keepalive failed: %s", exc)

    async def _reader(self) -> None:
        assert self._ws is not None
        try:
            async for frame in self._ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    msg = json.loads(frame.data)
                except ValueError:
                    log.warning("janus sent invalid JSON: %.200s", frame.data)
                    continue
                await self._dispatch(msg)
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("janus websocket closed"))

    async def _dispatch(self, msg: Event) -> None:
        kind = msg.get("janus")
        tx = msg.get("transaction")
        if kind == "ack" and tx in self._pending:
            if tx in self._ack_final:
                self._resolve(tx, msg)
            return
        if tx in self._pending and kind in ("success", "error", "event"):
            self._resolve(tx, msg)
            return
        if kind == "trickle":
            await self._on_trickle(msg)
        handle = msg.get("sender")
        queue = self.events.get(handle) if isinstance(handle, int) else None
        if queue is not None:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(msg)
        for cb in self.on_event:
            cb(msg)
        log.debug("janus event: %s", msg)

    def _resolve(self, tx: str, msg: Event) -> None:
        fut = self._pending.get(tx)
        if fut is not None and not fut.done():
            fut.set_result(msg)

    async def _on_trickle(self, msg: Event) -> None:
        cand = msg.get("candidate") or {}
        handle = msg.get("sender")
        if not isinstance(handle, int):
            return
        pc = self._pcs.get(handle)
        if pc is None or pc.remoteDescription is None:
            self._early.setdefault(handle, []).append(cand)
            return
        await self._add_candidate(pc, cand)

    @staticmethod
    async def _add_candidate(pc: RTCPeerConnection, cand: dict[str, Any]) -> None:
        """Add one trickled candidate (``{"completed": true}`` = end-of-candidates)."""
        try:
            if cand.get("completed"):
                await pc.addIceCandidate(None)  # ignored if the SDP already ended them
                return
            line = str(cand.get("candidate", ""))
            if not line:
                return
            ice = candidate_from_sdp(line.removeprefix("a=").removeprefix("candidate:"))
            ice.sdpMid = cand.get("sdpMid")
            ice.sdpMLineIndex = cand.get("sdpMLineIndex", 0)
            await pc.addIceCandidate(ice)
        except (ValueError, IndexError) as exc:
            log.warning("ignoring Janus candidate %r: %s", cand, exc)


# ---------------------------------------------------------------------------------------
# VideoRoom helpers for aiortc peers
# ---------------------------------------------------------------------------------------


def bot_configuration() -> RTCConfiguration:
    """aiortc configuration for bots: no ICE servers (never aiortc's public STUN default),
    max-bundle (one socket per peer connection; Janus bundles anyway).

    Also call ``mediaserver.sfu.peer.configure_ice_addresses([bot_ip])`` once per process
    so aiortc gathers only on the bots-side veth address.
    """
    return RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


def _jsep(desc: RTCSessionDescription) -> Jsep:
    return {"type": desc.type, "sdp": desc.sdp}


async def create_room(
    session: JanusSession,
    room_id: int,
    *,
    publishers: int,
    handle: int | None = None,
    **options: Any,
) -> None:
    """Create VideoRoom ``room_id`` (an existing room is fine).

    Defaults: no bitrate cap (``bitrate`` 0), Opus + VP8 only, ``notify_joining``
    false, no FIR timer, not permanent; ``options`` override/extend the request.
    """
    body: dict[str, Any] = {
        "request": "create",
        "room": room_id,
        "permanent": False,
        "publishers": publishers,
        "bitrate": 0,
        "fir_freq": 0,
        "audiocodec": "opus",
        "videocodec": "vp8",
        "notify_joining": False,
        **options,
    }
    own = handle is None
    h = await session.attach() if handle is None else handle
    try:
        await session.message(h, body)
    except JanusError as exc:
        if exc.code != ROOM_EXISTS:
            raise
    finally:
        if own:
            await session.detach(h)


async def publish(
    session: JanusSession,
    room_id: int,
    display: str,
    pc: RTCPeerConnection,
    *,
    webrtc_timeout: float = 15.0,
    offer_transform: Callable[[str], str] | None = None,
) -> int:
    """Join ``room_id`` as publisher ``display`` and publish ``pc``'s tracks
    (``offer_transform``: applied to the offer's SDP text, e.g. simulcast lines).

    ``pc`` must already have its tracks/transceivers. Returns the feed (publisher) id
    once Janus reports the PeerConnection up (``webrtcup``), so it can be subscribed
    to at once; the Janus handle is ``session.handle_of[feed]``.
    """
    handle = await session.attach()
    session.bind_pc(handle, pc)
    data, _ = await session.message(
        handle, {"request": "join", "ptype": "publisher", "room": room_id, "display": display}
    )
    if data.get("videoroom") != "joined":
        raise JanusError(0, f"unexpected join reply: {data}")
    feed = int(data["id"])
    session.handle_of[feed] = handle
    # aiortc gathers during setLocalDescription: the offer carries all our candidates.
    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription
    if offer_transform is not None:
        offer = RTCSessionDescription(sdp=offer_transform(offer.sdp), type=offer.type)
    data, answer = await session.message(
        handle,
        {"request": "configure", "audio": True, "video": True},
        _jsep(offer),
    )
    if answer is None:
        raise JanusError(0, f"configure returned no answer: {data}")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
    await session.flush_candidates(handle)
    await session.trickle_completed(handle)
    # Subscribing before the publisher's PeerConnection is up fails with 428 "No such
    # feed": wait for Janus's "webrtcup" (ICE + DTLS done) on this handle.
    await session.wait_event(handle, lambda ev: ev.get("janus") == "webrtcup", webrtc_timeout)
    return feed


async def subscribe(
    session: JanusSession,
    room_id: int,
    feed_ids: list[int],
    pc: RTCPeerConnection,
    *,
    webrtc_timeout: float = 15.0,
) -> int:
    """Subscribe ``pc`` to every stream of ``feed_ids`` (one multistream subscription).

    Register ``pc.on("track")`` before calling. Waits for ``webrtcup`` (skip with
    ``webrtc_timeout=0``). Returns the subscriber handle id.
    """
    handle = await session.attach()
    session.bind_pc(handle, pc)
    body = {
        "request": "join",
        "ptype": "subscriber",
        "room": room_id,
        "streams": [{"feed": f} for f in feed_ids],
    }
    data, offer = await session.message(handle, body)
    if offer is None:
        raise JanusError(0, f"subscriber join returned no offer: {data}")
    session.streams_of[handle] = list(data.get("streams") or [])
    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type=offer["type"]))
    await session.flush_candidates(handle)
    await pc.setLocalDescription(await pc.createAnswer())
    await session.message(handle, {"request": "start"}, _jsep(pc.localDescription))
    await session.trickle_completed(handle)
    if webrtc_timeout:
        await session.wait_event(handle, lambda ev: ev.get("janus") == "webrtcup", webrtc_timeout)
    return handle


# ---------------------------------------------------------------------------------------
# Self-test: python -m loadtests.janus --selftest (as root)
# ---------------------------------------------------------------------------------------

_ROOT = Path(__file__).resolve().parents[1]


def _sdp_lines(sdp: str, prefix: str) -> list[str]:
    return sorted({line for line in sdp.splitlines() if line.startswith(prefix)})


async def _selftest_inner(url: str, bot_ip: str, room: int, frames: int) -> dict[str, Any]:
    """Runs inside the namespace: room, one publisher, one subscriber, decoded frames."""
    import av
    from aiortc import AudioStreamTrack, MediaStreamTrack, VideoStreamTrack

    from mediaserver.sfu.peer import configure_ice_addresses

    configure_ice_addresses([bot_ip])
    result: dict[str, Any] = {}
    session = JanusSession(url)
    pub = RTCPeerConnection(bot_configuration())
    sub = RTCPeerConnection(bot_configuration())
    try:
        async with asyncio.timeout(60):
            await session.create()
            await create_room(session, room, publishers=4)
            await create_room(session, room, publishers=4)  # "already exists" is ignored
            pub.addTrack(AudioStreamTrack())
            pub.addTrack(VideoStreamTrack())
            t0 = time.monotonic()
            feed = await publish(session, room, "selftest-pub", pub)
            result["publish_s"] = round(time.monotonic() - t0, 3)

            tracks: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()
            sub.on("track", tracks.put_nowait)
            t0 = time.monotonic()
            await subscribe(session, room, [feed], sub)
            result["subscribe_s"] = round(time.monotonic() - t0, 3)
            got: dict[str, MediaStreamTrack] = {}
            async with asyncio.timeout(10):
                while len(got) < 2:
                    t = await tracks.get()
                    got[t.kind] = t
            t0 = time.monotonic()
            sizes = set()
            for _ in range(frames):
                async with asyncio.timeout(15):
                    frame = await got["video"].recv()
                if not isinstance(frame, av.VideoFrame):
                    raise AssertionError(f"expected a decoded video frame, got {frame!r}")
                sizes.add(f"{frame.width}x{frame.height}")
            result["first_frames_s"] = round(time.monotonic() - t0, 3)
            async with asyncio.timeout(10):
                audio = await got["audio"].recv()
            if not isinstance(audio, av.AudioFrame):
                raise AssertionError(f"expected a decoded audio frame, got {audio!r}")
            result["video_sizes"] = sorted(sizes)
            result["audio_rate"] = audio.sample_rate
            assert pub.remoteDescription is not None and sub.remoteDescription is not None
            result["publisher_answer_extmap"] = _sdp_lines(pub.remoteDescription.sdp, "a=extmap")
            result["subscriber_offer_extmap"] = _sdp_lines(sub.remoteDescription.sdp, "a=extmap")
            result["publisher_answer_rtcp_fb"] = _sdp_lines(pub.remoteDescription.sdp, "a=rtcp-fb")
            result["subscriber_offer_rtpmap"] = _sdp_lines(sub.remoteDescription.sdp, "a=rtpmap")
            result["janus_candidates"] = _sdp_lines(sub.remoteDescription.sdp, "a=candidate")
    finally:
        for pc in (sub, pub):
            with contextlib.suppress(Exception):
                await pc.close()
        await session.close()
    return result


def _selftest(cpu: int, event_loops: int, frames: int) -> int:
    if os.geteuid() != 0:
        print("janus selftest needs root (network namespace)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="msbench-janus-") as tmp, BenchNetns() as ns:
        directory = Path(tmp)
        write_janus_config(
            directory,
            server_ip=ns.server_ip,
            server_if=ns.server_if,
            ws_port=8188,
            event_loops=event_loops,
        )
        proc = start_janus(ns, directory, cpu)
        print(f"janus started in {proc.startup_seconds:.3f}s (pid {proc.pid}, cpu {cpu})")  # type: ignore[attr-defined]
        try:
            env = dict(os.environ, PYTHONPATH=str(_ROOT))
            inner = [sys.executable, "-m", "loadtests.janus", "--selftest-inner"]
            inner += ["--url", janus_url(directory), "--bot-ip", ns.bot_ip]
            inner += ["--frames", str(frames)]
            run = subprocess.run(ns.cmd(inner), cwd=_ROOT, env=env, timeout=120, check=False)
            alive = proc.poll() is None
        finally:
            code = stop_janus(proc)
        if run.returncode != 0 or not alive:
            print(f"--- {LOG_FILE} ---\n{_tail(directory / LOG_FILE, 60)}", file=sys.stderr)
            print(f"inner rc={run.returncode}, janus alive={alive}", file=sys.stderr)
            return 1
        print(f"janus exited with {code}")
    print("janus selftest ok")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.janus")
    parser.add_argument("--selftest", action="store_true", help="end-to-end check (root)")
    parser.add_argument("--selftest-inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", default="")
    parser.add_argument("--bot-ip", default=BenchNetns.bot_ip)
    parser.add_argument("--cpu", type=int, default=0)
    parser.add_argument("--event-loops", type=int, default=1)
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--room", type=int, default=4242)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    if args.selftest_inner:
        result = asyncio.run(_selftest_inner(args.url, args.bot_ip, args.room, args.frames))
        for key, value in result.items():
            print(f"  {key}: {value}")
        return 0
    if args.selftest:
        return _selftest(args.cpu, args.event_loops, args.frames)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
