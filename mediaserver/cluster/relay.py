"""Any node terminates a WebSocket; the room's node runs the session.

The edge node (where the client's WebSocket is) handles ``hello`` itself, places the
room on ``join`` and, if another node holds it, forwards every frame over Redis to that
node, which runs a normal :class:`SignallingSession` whose replies travel back the same
way. Media never goes through the edge: ICE candidates are the hosting node's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from ..sfu.room import RoomManager
from ..signalling import messages as m
from ..signalling.handler import SignallingSession
from ..telemetry import get_logger
from .cluster import Cluster, Lease, Unavailable

__all__ = ["Relay", "RemoteSession"]


class RemoteSession:
    """The hosting node's side of a relayed connection."""

    def __init__(self, session: SignallingSession, edge: str) -> None:
        self.session = session
        self.edge = edge
        self.queue: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            frame = await self.queue.get()
            if frame is None:
                await self.session.close("disconnected")
                return
            if not await self.session.on_frame(frame):
                await self.session.close("left")
                await self.session.disconnect()  # the edge closes the client's socket
                return


class Relay:
    def __init__(
        self,
        cluster: Cluster,
        manager: RoomManager,
        make_session: Callable[..., SignallingSession],
    ) -> None:
        self.cluster = cluster
        self.manager = manager
        self.make_session = make_session
        self.node = cluster.node_id
        self.remote: dict[tuple[str, str], RemoteSession] = {}  # (edge, conn) -> session
        self.edges: dict[
            str, tuple[Callable[[str], Awaitable[None]], Callable[[], Awaitable[None]], str]
        ] = {}
        self.log = get_logger(node=self.node, component="relay")
        cluster.on_relay = self.on_message
        self._watch = asyncio.ensure_future(self._watch_loop())

    async def close(self) -> None:
        self._watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._watch
        for rs in list(self.remote.values()):
            rs.queue.put_nowait(None)

    # --- edge side -----------------------------------------------------------------

    def new_conn_id(self) -> str:
        return secrets.token_urlsafe(12)

    async def open(
        self,
        conn: str,
        lease: Lease,
        frames: list[str | bytes],
        *,
        peer: str,
        send: Callable[[str], Awaitable[None]],
        close: Callable[[], Awaitable[None]],
    ) -> None:
        self.edges[conn] = (send, close, lease.node)
        await self.cluster.send(
            lease.node,
            {
                "t": "open",
                "conn": conn,
                "edge": self.node,
                "room": lease.room,
                "lease": lease.value,
                "peer": peer,
                "frames": [
                    f if isinstance(f, str) else f.decode("utf-8", "replace") for f in frames
                ],
            },
        )

    async def forward(self, conn: str, frame: str | bytes) -> None:
        entry = self.edges.get(conn)
        if entry is None:
            return
        data = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
        await self.cluster.send(
            entry[2], {"t": "frame", "conn": conn, "edge": self.node, "data": data}
        )

    async def closed(self, conn: str) -> None:
        entry = self.edges.pop(conn, None)
        if entry is not None:
            with contextlib.suppress(Unavailable):
                await self.cluster.send(entry[2], {"t": "close", "conn": conn, "edge": self.node})

    # --- both sides ------------------------------------------------------------------

    async def on_message(self, msg: dict[str, Any]) -> None:
        kind = msg.get("t")
        conn = str(msg.get("conn"))
        if kind == "msg":  # for one of our clients
            entry = self.edges.get(conn)
            if entry is not None:
                await entry[0](str(msg["data"]))
        elif kind == "bye":  # the hosting node closed one of our clients
            entry = self.edges.pop(conn, None)
            if entry is not None:
                await entry[1]()
        elif kind == "open":
            await self._open_remote(msg)
        elif kind == "close_room":  # e.g. its link was revoked through another node
            room_id, reason = str(msg.get("room")), str(msg.get("reason", "closed"))
            if reason == "link_revoked":  # also when the room is only about to open here
                await self.manager.revoke_link(room_id)
                return
            room = self.manager.rooms.get(room_id)
            if room is not None:
                await self.manager.close_room(room, str(msg.get("reason", "closed")))
        elif kind == "frame":
            rs = self.remote.get((str(msg["edge"]), conn))
            if rs is not None:
                rs.queue.put_nowait(str(msg["data"]))
        elif kind == "close":
            rs = self.remote.pop((str(msg["edge"]), conn), None)
            if rs is not None:
                rs.queue.put_nowait(None)

    async def _open_remote(self, msg: dict[str, Any]) -> None:
        edge, conn = str(msg["edge"]), str(msg["conn"])
        lease = Lease.parse(str(msg["room"]), str(msg["lease"]))

        async def send(message: dict[str, Any]) -> None:
            with contextlib.suppress(Unavailable):
                await self.cluster.send(
                    edge,
                    {"t": "msg", "conn": conn, "data": json.dumps(message, separators=(",", ":"))},
                )

        async def disconnect() -> None:
            self.remote.pop((edge, conn), None)
            with contextlib.suppress(Unavailable):
                await self.cluster.send(edge, {"t": "bye", "conn": conn})

        if lease.room not in self.cluster.leases and not await self.cluster.hold(lease):
            await send(m.error("room_moved", "the meeting moved to another server: reconnect"))
            await disconnect()
            return
        session = self.make_session(send=send, disconnect=disconnect, peer=str(msg.get("peer", "")))
        session.version = m.PROTOCOL_VERSION  # the edge handled hello
        session.ever_joined = True
        rs = RemoteSession(session, edge)
        self.remote[(edge, conn)] = rs
        for frame in msg.get("frames", []):
            rs.queue.put_nowait(str(frame))

    async def _watch_loop(self) -> None:
        """Close connections whose other end (edge or hosting node) died."""
        while True:
            await asyncio.sleep(self.cluster.heartbeat)
            try:
                hosts = {entry[2] for entry in self.edges.values()}
                dead_hosts = {h for h in hosts if not await self.cluster.is_alive(h)}
                for conn, (send, close, host) in list(self.edges.items()):
                    if host in dead_hosts:
                        self.edges.pop(conn, None)
                        with contextlib.suppress(Exception):
                            await send(
                                json.dumps(
                                    m.error(
                                        "room_moved", "the meeting's server went away: reconnect"
                                    )
                                )
                            )
                        await close()
                edges = {edge for edge, _ in self.remote}
                dead_edges = {e for e in edges if not await self.cluster.is_alive(e)}
                for key, rs in list(self.remote.items()):
                    if key[0] in dead_edges:
                        self.remote.pop(key, None)
                        rs.queue.put_nowait(None)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("relay watch failed")
