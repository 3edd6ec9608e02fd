"""Any node terminates a WebSocket; the room's node runs the session.

The edge node (where the client's WebSocket is) handles ``hello`` itself, places the
room on ``join`` and, if another node holds it, forwards every frame over Redis to that
node, which runs a normal :class:`SignallingSession` whose replies travel back the same
way. Media never goes through the edge: ICE candidates are the hosting node's.

Nothing is lost silently: every message goes through the destination's
:class:`Outbox` (ordered, repeated until a subscriber got it); a node that stops
listening is given up on with a message to each client concerned; and every heartbeat
each edge lists its relayed connections to their hosting nodes, which close sessions
the edge no longer has (a lost ``close``) and name the connections they do not know
(``gone``: a lost ``open``, or a session the host dropped), which the edge closes with
``room_moved`` so that the client reconnects instead of waiting without media.

Every ``frame`` and ``msg`` carries its connection's sequence number (``seq``, from 1
in each direction). A gap, or a list (``conns`` with the edge's last ``seq``, ``acks``
with the host's) showing that the other side sent more than arrived, means a message
was lost (a subscriber connection that broke after PUBLISH counted it): the session is
ended and the client told ``room_moved``, so it rejoins instead of waiting forever
for a reply. The lists travel through the same ordered outboxes as the messages, so
they arrive after every message sent before them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..sfu.rooms import RoomManager
from ..signalling import messages as m
from ..signalling.handler import SignallingSession
from ..telemetry import get_logger
from .cluster import Cluster, Lease
from .outbox import Outbox

__all__ = ["Relay", "RemoteSession"]

MOVED = json.dumps(m.error("room_moved", "the meeting's server stopped answering: reconnect"))


class RemoteSession:
    """The hosting node's side of a relayed connection."""

    def __init__(self, session: SignallingSession, edge: str) -> None:
        self.session = session
        self.edge = edge
        self.received = 0  # seq of the last frame from the edge
        self.sent = 0  # seq of the last msg to the edge
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


@dataclass
class EdgeConn:
    """The edge's side of a relayed connection."""

    send: Callable[[str], Awaitable[None]]
    close: Callable[[], Awaitable[None]]
    host: str
    since: float = field(default_factory=time.monotonic)
    sent: int = 0  # seq of the last frame to the host
    received: int = 0  # seq of the last msg from the host


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
        self.edges: dict[str, EdgeConn] = {}
        self.outbox = Outbox(cluster.publish, self._node_gone, give_up=cluster.relay_timeout)
        self.log = get_logger(node=self.node, component="relay")
        cluster.on_relay = self.on_message
        self._watch = asyncio.ensure_future(self._watch_loop())

    async def close(self) -> None:
        self._watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._watch
        for rs in list(self.remote.values()):
            rs.queue.put_nowait(None)
        await self.outbox.close()

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
        self.edges[conn] = EdgeConn(send, close, lease.node)
        self.outbox.put(
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
        entry.sent += 1
        self.outbox.put(
            entry.host,
            {"t": "frame", "conn": conn, "edge": self.node, "data": data, "seq": entry.sent},
        )

    async def closed(self, conn: str) -> None:
        entry = self.edges.pop(conn, None)
        if entry is not None:
            self.outbox.put(entry.host, {"t": "close", "conn": conn, "edge": self.node})

    async def _moved(self, conn: str) -> None:
        """Tell a relayed client its meeting's server is gone, and close its socket."""
        entry = self.edges.pop(conn, None)
        if entry is None:
            return
        with contextlib.suppress(Exception):
            await entry.send(MOVED)
        with contextlib.suppress(Exception):
            await entry.close()

    # --- both sides ------------------------------------------------------------------

    async def on_message(self, msg: dict[str, Any]) -> None:
        kind = msg.get("t")
        conn = str(msg.get("conn"))
        if kind == "msg":  # for one of our clients
            entry = self.edges.get(conn)
            if entry is None:
                return
            if int(msg.get("seq", entry.received + 1)) != entry.received + 1:
                self.log.warning("relay message lost", conn=conn, peer=entry.host)
                await self._moved(conn)
                return
            entry.received += 1
            await entry.send(str(msg["data"]))
        elif kind == "bye":  # the hosting node closed one of our clients
            entry = self.edges.pop(conn, None)
            if entry is not None:
                await entry.close()
        elif kind == "gone":  # the hosting node does not know these connections
            for c in msg.get("conns", []):
                entry = self.edges.get(str(c))
                if entry is not None and entry.host == msg.get("host"):
                    await self._moved(str(c))
        elif kind == "acks":  # how many messages the host sent on each connection
            for c, seq in zip(msg.get("conns", []), msg.get("seq", []), strict=False):
                entry = self.edges.get(str(c))
                if entry is not None and entry.host == msg.get("host") and entry.received < seq:
                    self.log.warning("relay message lost", conn=str(c), peer=entry.host)
                    await self._moved(str(c))
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
        elif kind == "revoke_invite":  # a guest invite revoked through another node
            await self.manager.revoke_invite(str(msg.get("room")), str(msg.get("invite")))
        elif kind == "frame":
            key = (str(msg["edge"]), conn)
            rs = self.remote.get(key)
            if rs is None:
                return
            if int(msg.get("seq", rs.received + 1)) != rs.received + 1:
                self.log.warning("relay message lost", conn=conn, peer=key[0])
                self._end_remote(key, tell_edge=True)
                return
            rs.received += 1
            rs.queue.put_nowait(str(msg["data"]))
        elif kind == "close":
            rs = self.remote.pop((str(msg["edge"]), conn), None)
            if rs is not None:
                rs.queue.put_nowait(None)
        elif kind == "conns":
            conns = [str(c) for c in msg.get("conns", [])]
            sent = [int(x) for x in msg.get("seq", [])] or [0] * len(conns)
            self._reconcile(str(msg["edge"]), dict(zip(conns, sent, strict=False)))

    def _end_remote(self, key: tuple[str, str], *, tell_edge: bool) -> None:
        rs = self.remote.pop(key, None)
        if rs is not None:
            rs.queue.put_nowait(None)
        if tell_edge:
            self.outbox.put(key[0], {"t": "gone", "conns": [key[1]], "host": self.node})

    def _reconcile(self, edge: str, listed: dict[str, int]) -> None:
        """Host side: the edge's list of the connections it relays to us, with the
        ``seq`` of the last frame it sent on each."""
        for key, rs in list(self.remote.items()):
            if key[0] != edge:
                continue
            if key[1] not in listed:  # its close was lost
                self._end_remote(key, tell_edge=False)
            elif rs.received < listed[key[1]]:  # frames were lost: "gone" below
                self.log.warning("relay message lost", conn=key[1], peer=edge)
                self._end_remote(key, tell_edge=False)
        unknown = sorted(c for c in listed if (edge, c) not in self.remote)
        if unknown:
            self.outbox.put(edge, {"t": "gone", "conns": unknown, "host": self.node})
        mine = sorted(c for e, c in self.remote if e == edge)
        self.outbox.put(
            edge,
            {
                "t": "acks",
                "host": self.node,
                "conns": mine,
                "seq": [self.remote[(edge, c)].sent for c in mine],
            },
        )

    async def _open_remote(self, msg: dict[str, Any]) -> None:
        edge, conn = str(msg["edge"]), str(msg["conn"])
        lease = Lease.parse(str(msg["room"]), str(msg["lease"]))

        counter = {"sent": 0}  # (the session may send before it is registered)

        async def send(message: dict[str, Any]) -> None:
            counter["sent"] += 1
            rs = self.remote.get((edge, conn))
            if rs is not None:
                rs.sent = counter["sent"]
            self.outbox.put(
                edge,
                {
                    "t": "msg",
                    "conn": conn,
                    "data": json.dumps(message, separators=(",", ":")),
                    "seq": counter["sent"],
                },
            )

        async def disconnect() -> None:
            self.remote.pop((edge, conn), None)
            self.outbox.put(edge, {"t": "bye", "conn": conn})

        if lease.room not in self.cluster.leases and not await self.cluster.hold(lease):
            await send(m.error("room_moved", "the meeting moved to another server: reconnect"))
            await disconnect()
            return
        session = self.make_session(send=send, disconnect=disconnect, peer=str(msg.get("peer", "")))
        session.version = m.PROTOCOL_VERSION  # the edge handled hello
        session.ever_joined = True
        rs = RemoteSession(session, edge)
        rs.sent = counter["sent"]
        self.remote[(edge, conn)] = rs
        for frame in msg.get("frames", []):
            rs.queue.put_nowait(str(frame))

    async def _node_gone(self, node: str) -> None:
        """``node`` stopped listening: close what we relay to it or run for it."""
        self.log.warning("relay peer gone", peer=node)
        for conn, entry in list(self.edges.items()):
            if entry.host == node:
                await self._moved(conn)
        for key, rs in list(self.remote.items()):
            if key[0] == node:
                self.remote.pop(key, None)
                rs.queue.put_nowait(None)

    async def _watch_loop(self) -> None:
        """Close connections whose other end (edge or hosting node) died; list our
        relayed connections to their hosts (see the module docstring)."""
        while True:
            await asyncio.sleep(self.cluster.heartbeat)
            try:
                by_host: dict[str, list[str]] = {}
                for conn, entry in self.edges.items():
                    by_host.setdefault(entry.host, []).append(conn)
                for host, conns in by_host.items():
                    if not await self.cluster.is_alive(host):
                        await self._node_gone(host)
                    else:
                        seq = [self.edges[c].sent for c in conns]
                        self.outbox.put(
                            host, {"t": "conns", "edge": self.node, "conns": conns, "seq": seq}
                        )
                for edge in {edge for edge, _ in self.remote}:
                    if not await self.cluster.is_alive(edge):
                        await self._node_gone(edge)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("relay watch failed")
