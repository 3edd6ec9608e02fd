"""The node's rooms: created on first join, closed when empty, revocations of links and
guest invites remembered, participant keys and TURN credentials issued, shutdown.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..config import Config
from ..limits import AddressRate, WorkGate
from ..lobby.keys import issue_key
from ..telemetry import Metrics
from .base import JoinRefused
from .room import Room
from .sdp_limits import SdpLimits
from .turn import turn_ice_server

__all__ = ["REVOKED_MEMORY_SECONDS", "RoomManager"]

#: How long a revoked link id is remembered by the node (joins in flight since before
#: the revocation are refused for at least this long; docs/architecture.md).
REVOKED_MEMORY_SECONDS = 86400.0


def _remember(revoked: dict[str, float], key: str) -> None:
    """Record ``key`` as revoked now; past 1 000 entries, forget those older than
    :data:`REVOKED_MEMORY_SECONDS`."""
    now = time.monotonic()
    if len(revoked) > 1000:
        for old in [k for k, t in revoked.items() if now - t >= REVOKED_MEMORY_SECONDS]:
            del revoked[old]
    revoked[key] = now


class RoomManager:
    """The node's rooms (memory state backend: rooms are ephemeral by design)."""

    def __init__(self, config: Config, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics
        self.rooms: dict[str, Room] = {}
        self.accepting = True
        sig = config.signalling
        self.sdp_limits = SdpLimits(
            max_mlines=sig.max_sdp_mlines, max_attributes_per_mline=sig.max_sdp_attributes_per_mline
        )
        #: Client SDP applied at once on this node (publish offers, subscribe answers).
        self.sdp_work = WorkGate(sig.max_concurrent_sdp, sig.max_queued_sdp)
        #: joins per client address (each costs a participant and a peer connection)
        self.join_rate = AddressRate(
            sig.joins_per_minute_per_address / 60.0, sig.join_burst_per_address
        )
        self.ice_servers: list[dict[str, Any]] = [
            {"urls": list(s.urls), "username": s.username, "credential": s.credential}
            for s in config.rtc.ice_servers
        ]
        self.ice_servers_for_clients = [{k: v for k, v in s.items() if v} for s in self.ice_servers]
        #: Called with (room, event type, data) for rooms that belong to a link.
        self.on_event: Callable[[Room, str, dict[str, Any]], None] | None = None
        #: Called with each new room before anyone joins it (the cluster restores the
        #: state of a room that moved here, and its media deadline).
        self.on_room_opened: Callable[[Room], None] | None = None
        #: Called after a room closed (the cluster releases the room's lease).
        self.on_room_closed: Callable[[Room], Awaitable[None]] | None = None
        #: Signs participant keys (lobby/keys.py); the link service's token secret
        #: replaces this per-process one at start-up (app.py).
        self.key_secret = secrets.token_bytes(32)
        #: Link ids revoked (→ when): no room opens or stays open for them.
        self.revoked: dict[str, float] = {}
        #: Guest invite ids revoked (→ when): nobody waits or joins through them here.
        self.revoked_invites: dict[str, float] = {}

    def participant_key(self, room_id: str, client_id: str) -> str:
        return issue_key(self.key_secret, room_id, client_id)

    def is_revoked(self, link_id: str) -> bool:
        return link_id in self.revoked

    def mark_revoked(self, link_id: str) -> None:
        """Synchronously: from now on no room opens or admits anyone for ``link_id``."""
        _remember(self.revoked, link_id)

    def is_invite_revoked(self, invite_id: str | None) -> bool:
        return invite_id is not None and invite_id in self.revoked_invites

    async def revoke_invite(self, link_id: str, invite_id: str) -> int:
        """A guest invite of ``link_id`` was revoked: remember it (joins in flight that
        checked it before), and send away whoever waits in the lobby through it. People
        already admitted through it stay (a host removes them if need be). Returns how
        many waiting guests were sent away."""
        _remember(self.revoked_invites, invite_id)
        room = self.rooms.get(link_id)
        if room is None:
            return 0
        return await room.lobby.refuse_invite(invite_id)

    async def revoke_link(self, link_id: str, reason: str = "link_revoked") -> None:
        """The link was revoked: mark it first, then close its room if it is open here."""
        self.mark_revoked(link_id)
        room = self.rooms.get(link_id)
        if room is not None:
            await self.close_room(room, reason)

    def client_ice_servers(self, participant_id: str) -> list[dict[str, Any]]:
        """``joined.ice_servers``: the static servers, plus the TURN server with fresh
        credentials for this participant when ``[turn]`` is configured."""
        turn = self.config.turn
        if not turn.urls:
            return self.ice_servers_for_clients
        extra = turn_ice_server(turn.urls, turn.secret, participant_id, turn.ttl_seconds)
        return [*self.ice_servers_for_clients, extra]

    def emit(self, room: Room, etype: str, data: dict[str, Any]) -> None:
        if room.link_id is not None and self.on_event is not None:
            try:
                self.on_event(room, etype, data)
            except Exception:
                room.log.exception("room event hook failed", event_type=etype)

    def room(self, room_id: str) -> Room:
        """The open room ``room_id``, opened now if needed. Synchronous, so that nothing
        can happen between this check and the caller's ``Room.join`` or knock."""
        if not self.accepting:
            raise JoinRefused("shutting_down", "server is shutting down")
        if room_id in self.revoked:
            raise JoinRefused("link_revoked", "this meeting was cancelled")
        room = self.rooms.get(room_id)
        if room is None or room.closed:
            room = Room(self, room_id)
            if self.on_room_opened is not None:
                self.on_room_opened(room)
            self.rooms[room_id] = room
            self.metrics.rooms.inc()
            room.log.info("room opened")
        return room

    async def close_room(self, room: Room, reason: str) -> None:
        if self.rooms.get(room.id) is room:
            del self.rooms[room.id]
            self.metrics.rooms.dec()
        await room.close(reason)
        if self.on_room_closed is not None:
            try:
                await self.on_room_closed(room)
            except Exception:
                room.log.exception("room close hook failed")

    async def shutdown(self, reason: str = "server_shutdown") -> None:
        self.accepting = False
        for room in list(self.rooms.values()):
            await self.close_room(room, reason)
