"""The waiting room of one room: knocks, admission, refusal, timeouts.

A knocking connection is not a participant: it receives only its own lobby status and
nothing about the room (participants, SDP, media, statistics) until a host admits it.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..sfu.base import JoinRefused
from ..telemetry import get_logger
from .identity import Identity
from .policy import decide_knock

if TYPE_CHECKING:
    from ..sfu.participant import Participant
    from ..sfu.room import Room

__all__ = ["LOBBY_LIST_MAX", "Knock", "Lobby"]

#: A host's ``joined.lobby`` lists at most this many (the oldest) waiting guests;
#: ``lobby_waiting`` has the count.
LOBBY_LIST_MAX = 20

SendMessage = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(eq=False)
class Knock:
    """A guest waiting for a host's decision."""

    name: str
    send: SendMessage
    #: Called with the new participant when a host admits the knock.
    on_admitted: Callable[[Participant], None]
    #: Closes the knocker's connection (after a refusal or timeout).
    disconnect: Callable[[], Awaitable[None]]
    identity: Identity
    invite_limit: int = 0
    #: The source address (WebSocket peer), for the per-address cap.
    address: str = ""
    id: str = field(default_factory=lambda: f"KN_{secrets.token_urlsafe(9)}")
    created: float = field(default_factory=time.monotonic)
    timer: asyncio.Task[None] | None = None

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "waiting_seconds": self.waited()}

    def waited(self) -> float:
        return round(time.monotonic() - self.created, 3)


class Lobby:
    def __init__(self, room: Room, timeout: float) -> None:
        self.room = room
        self.timeout = timeout
        self.knocks: dict[str, Knock] = {}
        self.metrics = room.manager.metrics
        self.log = get_logger(room=room.id, component="lobby")

    def oldest(self, count: int) -> list[Knock]:
        return list(self.knocks.values())[:count]

    def hosts(self) -> list[Participant]:
        return [p for p in self.room.participants.values() if p.role == "host" and not p.closed]

    async def _to_hosts(self, message: dict[str, Any]) -> None:
        for host in self.hosts():
            with contextlib.suppress(Exception):
                await host.send(message)

    async def knock(self, knock: Knock, ref: str | int | None) -> Knock:
        """Start waiting; raises JoinRefused (``lobby_full``, ``removed``, ...) at once,
        before the first await (the caller checked the room synchronously)."""
        cfg = self.room.manager.config.rooms
        full = decide_knock(
            waiting=len(self.knocks),
            waiting_from_address=sum(1 for k in self.knocks.values() if k.address == knock.address),
            max_waiting=cfg.lobby_max_waiting,
            max_per_address=cfg.lobby_max_per_address,
        )
        if full is not None:
            self.metrics.signalling_errors.labels(full.code).inc()
            raise JoinRefused(full.code, full.message)
        if self.room.closed or self.room.manager.is_revoked(self.room.id):
            raise JoinRefused("bad_state", "room is closing")
        if self.room.bar.bars(knock.identity):
            raise JoinRefused("removed", "you were removed from this meeting")
        if self.room.manager.is_invite_revoked(knock.identity.invite_id):
            raise JoinRefused("invalid_invite", "this guest invite was revoked")
        self.knocks[knock.id] = knock
        self.metrics.knocks.inc()
        knock.timer = asyncio.ensure_future(self._expire(knock))
        await knock.send(
            {
                "type": "lobby",
                "status": "waiting",
                "knock_id": knock.id,
                "host_present": bool(self.hosts()),
                "timeout_seconds": self.timeout,
                "recording": self.room.recording is not None and self.room.recording.active,
                "key": self.room.manager.participant_key(self.room.id, knock.identity.client_id),
                "ref": ref,
            }
        )
        await self._to_hosts(
            {"type": "knock", "knock": knock.describe(), "waiting": len(self.knocks)}
        )
        self.log.info("knock", knock=knock.id, host_present=bool(self.hosts()))
        return knock

    async def _expire(self, knock: Knock) -> None:
        await asyncio.sleep(self.timeout)
        if self.knocks.pop(knock.id, None) is None:
            return
        self.metrics.lobby_timeouts.inc()
        self.metrics.lobby_wait.observe(knock.waited())
        with contextlib.suppress(Exception):
            await knock.send(
                {
                    "type": "error",
                    "code": "lobby_timeout",
                    "message": "nobody admitted you in time"
                    + ("" if self.hosts() else " (no host joined)"),
                }
            )
        await self._to_hosts({"type": "knock_withdrawn", "knock_id": knock.id, "reason": "timeout"})
        await knock.disconnect()

    async def host_arrived(self, host: Participant) -> None:
        """A host joined: it needs no list (``joined.lobby`` has it); tell the waiting."""
        await self._tell_waiting(host_present=True)

    async def host_left(self) -> None:
        """The last host left: the waiting go back to waiting for a host."""
        if not self.hosts():
            await self._tell_waiting(host_present=False)

    async def tell_waiting(self, message: dict[str, Any]) -> None:
        """``message`` to every waiting guest (e.g. that recording started)."""
        for knock in list(self.knocks.values()):
            with contextlib.suppress(Exception):
                await knock.send(message)

    async def _tell_waiting(self, *, host_present: bool) -> None:
        for knock in list(self.knocks.values()):
            with contextlib.suppress(Exception):
                await knock.send(
                    {
                        "type": "lobby",
                        "status": "waiting",
                        "knock_id": knock.id,
                        "host_present": host_present,
                        "timeout_seconds": self.timeout,
                    }
                )

    async def admit(self, knock_id: str) -> Participant | None:
        knock = self.knocks.pop(knock_id, None)
        if knock is None:
            return None
        if knock.timer is not None:
            knock.timer.cancel()
        try:
            participant = await self.room.join(
                knock.name,
                knock.send,
                None,
                role="guest",
                identity=knock.identity,
                invite_limit=knock.invite_limit,
            )
        except JoinRefused as exc:  # the room filled up meanwhile, or a removal bars it
            with contextlib.suppress(Exception):
                await knock.send({"type": "error", "code": exc.code, "message": exc.message})
            await knock.disconnect()
            await self._to_hosts(
                {"type": "knock_withdrawn", "knock_id": knock.id, "reason": exc.code}
            )
            return None
        self.metrics.admits.inc()
        self.metrics.lobby_wait.observe(knock.waited())
        knock.on_admitted(participant)
        await self._to_hosts(
            {
                "type": "knock_resolved",
                "knock_id": knock.id,
                "outcome": "admitted",
                "participant_id": participant.id,
            }
        )
        return participant

    async def admit_all(self) -> list[Participant]:
        admitted = []
        for knock_id in list(self.knocks):
            p = await self.admit(knock_id)
            if p is not None:
                admitted.append(p)
        return admitted

    async def refuse(self, knock_id: str, message: str = "", code: str = "refused") -> bool:
        knock = self.knocks.pop(knock_id, None)
        if knock is None:
            return False
        if knock.timer is not None:
            knock.timer.cancel()
        self.metrics.refusals.inc()
        self.metrics.lobby_wait.observe(knock.waited())
        with contextlib.suppress(Exception):
            await knock.send(
                {
                    "type": "refused",
                    "code": code,
                    "message": message or "the host did not let you in",
                }
            )
        await knock.disconnect()
        await self._to_hosts({"type": "knock_resolved", "knock_id": knock.id, "outcome": "refused"})
        return True

    async def refuse_all(self, message: str, code: str = "refused") -> None:
        for knock_id in list(self.knocks):
            await self.refuse(knock_id, message, code)

    async def refuse_barred(self) -> None:
        """After a removal: send away every waiting guest the bar now covers."""
        for knock in list(self.knocks.values()):
            if self.room.bar.bars(knock.identity):
                await self.refuse(knock.id, "you were removed from this meeting", "removed")

    async def refuse_invite(self, invite_id: str) -> int:
        """The guest invite was revoked: send away everyone waiting through it."""
        gone = [k for k in self.knocks.values() if k.identity.invite_id == invite_id]
        for knock in gone:
            await self.refuse(knock.id, "this guest invite was revoked", "invalid_invite")
        return len(gone)

    async def withdraw(self, knock: Knock) -> None:
        """The knocker left (or its connection dropped)."""
        if self.knocks.pop(knock.id, None) is None:
            return
        if knock.timer is not None:
            knock.timer.cancel()
        await self._to_hosts({"type": "knock_withdrawn", "knock_id": knock.id, "reason": "left"})

    async def close(self, reason: str) -> None:
        await self.refuse_all("the meeting ended", code=reason)
