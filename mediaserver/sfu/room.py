"""Rooms: the top of the SFU's ownership tree (the node's RoomManager is in rooms.py).

    RoomManager ─ Room ─ Participant ─┬─ Publication   (a track the participant sends us)
                                      └─ Subscription  (a Publication forwarded to it)

A child is created by its parent, removes itself from the parent when it closes, and a
closing parent closes its children (participant.py, publication.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from typing import TYPE_CHECKING, Any

from ..lobby.identity import Bar, Identity
from ..lobby.keys import new_client_id
from ..lobby.lobby import LOBBY_LIST_MAX, Lobby
from ..recording import control as recording_control
from ..recording.session import RoomRecording
from ..telemetry import get_logger
from .base import JoinRefused, Refused, SendMessage
from .lastn import Pins, SpeakerOrder, video_from
from .participant import Participant
from .publication import Publication
from .turns import JoinGate

if TYPE_CHECKING:
    from .rooms import RoomManager

__all__ = ["JoinRefused", "Participant", "Publication", "Refused", "Room"]

#: The room's ticker: every 50 ms while a publication has work pending (NACKs to retry,
#: simulcast layers: Publication.pending), else every 500 ms (sender reports are due
#: every 0.5-1.5 s, receiver reports every second, the active speaker every 0.5 s; each
#: tick wakes the server, and a wake-up from idle costs it 40-190 us on a VM).
TICK_SECONDS = 0.05
IDLE_TICK_SECONDS = 0.5
SPEAKER_INTERVAL = 0.5
STATS_INTERVAL = 2.0
REPORT_INTERVAL = 1.0


class Room:
    def __init__(self, manager: RoomManager, room_id: str) -> None:
        self.manager = manager
        self.id = room_id
        self.participants: dict[str, Participant] = {}
        self.closed = False
        self.empty_since: float | None = asyncio.get_event_loop().time()
        self.log = get_logger(room=room_id)
        self._last_report = 0.0
        self.link_id: str | None = None
        self.tenant_id: str | None = None
        self.max_participants = 0  # 0: rooms.max_participants
        self.max_guests = 0  # 0: no separate cap on guests
        self.guest_policy = "allow"  # rooms joined by id admit everyone
        self.share_url: str | None = None  # the guest join URL of a link's room
        self.title = ""  # the event summary of a link's room
        self.locked = False
        self.media_locks: set[str] = set()  # kinds a host muted and locked for everyone
        self.bar = Bar()  # identities removed from this meeting (lobby/identity.py)
        self.started = False
        self.opened_at = time.time()
        self.attendance: dict[str, dict[str, Any]] = {}
        self.active_speaker: str | None = None
        self.speaker_order = SpeakerOrder()  # last-N (rooms.last_n)
        self.pins = Pins()  # per subscriber: cameras exempt from its last-N
        self._last_speaker = 0.0
        self._last_stats = 0.0
        self._stats_sent: dict[str, float] = {}
        self.lobby = Lobby(self, manager.config.rooms.lobby_timeout_seconds)
        #: Loop time after which no media is forwarded (a cluster node's self-fencing:
        #: its lease of the room may have expired).
        self.media_until = math.inf
        #: Speaking seconds by bar key from before the room moved here (cluster).
        self.speaking_carried: dict[str, float] = {}
        #: Why the room closed (set by close()).
        self.close_reason: str | None = None
        #: Who may record (off|host|always; a link's setting replaces the default) and
        #: the recording running now (mediaserver/recording).
        self.recording_policy = manager.config.recording.default_policy
        self.recording: RoomRecording | None = None
        #: Subscribers' offers and answers are taken one at a time (sfu/turns.py).
        self.negotiation_turn = asyncio.Lock()
        #: Joins first: others' subscriber offers wait while someone joins (turns.py).
        self.join_gate = JoinGate()
        self._fast = True  # the next tick comes after TICK_SECONDS
        self._sleeper: asyncio.Future[None] | None = None
        self._ticker = asyncio.ensure_future(self._run())

    def hurry(self) -> None:
        """Something needs the fast tick now (a new loss to NACK again): end a slow wait."""
        self._fast = True
        sleeper = self._sleeper
        if sleeper is not None and not sleeper.done():
            sleeper.set_result(None)

    async def broadcast(self, message: dict[str, Any], *, exclude: str | None = None) -> None:
        for p in list(self.participants.values()):
            if p.id != exclude and not p.closed:
                with contextlib.suppress(Exception):
                    await p.send(message)

    async def join(
        self,
        name: str,
        send: SendMessage,
        ref: str | int | None = None,
        *,
        role: str = "guest",
        identity: Identity | None = None,
        invite_limit: int = 0,
    ) -> Participant:
        """The one step every admission ends in (direct, from the waiting room, by a
        policy change): it re-checks the room, the link and the removal bar, and adds
        the participant before its first await."""
        who = identity or Identity(new_client_id())
        user_id, invite_id = who.user_id, who.invite_id
        if self.closed:
            raise JoinRefused("bad_state", "room is closing")
        if self.manager.is_revoked(self.id):
            raise JoinRefused("link_revoked", "this meeting was cancelled")
        if self.bar.bars(who):
            raise JoinRefused("removed", "you were removed from this meeting")
        limit = self.max_participants or self.manager.config.rooms.max_participants
        if len(self.participants) >= limit:
            raise JoinRefused("room_full", f"room is full ({limit} participants)")
        if role == "guest" and self.max_guests:
            guests = sum(1 for p in self.participants.values() if p.role == "guest")
            if guests >= self.max_guests:
                raise JoinRefused(
                    "guests_full", f"this meeting admits at most {self.max_guests} guests"
                )
        if self.manager.is_invite_revoked(invite_id):
            raise JoinRefused("invalid_invite", "this guest invite was revoked")
        if invite_id is not None:
            via = sum(1 for p in self.participants.values() if p.invite_id == invite_id)
            if via >= invite_limit:
                raise JoinRefused(
                    "invite_full", f"this guest invite admits {invite_limit} guests at once"
                )
        participant = Participant(self, name, send)
        participant.role = role
        participant.user_id = user_id
        participant.invite_id = invite_id
        participant.identity = who
        participant.speaking_seconds = self.speaking_carried.pop(who.client_id, 0.0)
        if role != "host":
            participant.locked_kinds = set(self.media_locks)
        others = [p.describe() for p in self.participants.values()]
        first = not self.started
        self.participants[participant.id] = participant
        self.speaker_order.joined(participant.id)
        self.empty_since = None
        self.manager.metrics.participants.inc()
        await send(
            {
                "type": "joined",
                "room": self.id,
                "participant_id": participant.id,
                "role": role,
                "participants": others,
                "ice_servers": self.manager.client_ice_servers(participant.id),
                "guest_policy": self.guest_policy,
                "locked": self.locked,
                "share_url": self.share_url,
                "title": self.title,
                "active_speaker": self.active_speaker,
                "key": self.manager.participant_key(self.id, who.client_id),
                "recording": recording_control.recording_state(self),
                "simulcast": self.manager.config.rtc.simulcast_publish,
                **(
                    {
                        "lobby": [k.describe() for k in self.lobby.oldest(LOBBY_LIST_MAX)],
                        "lobby_waiting": len(self.lobby.knocks),
                    }
                    if role == "host"
                    else {}
                ),
                "ref": ref,
            }
        )
        await self.apply_last_n()  # after `joined`: nothing about the room comes first
        self.attendance[participant.id] = {
            "participant_id": participant.id,
            "name": name,
            "role": role,
            "user_id": user_id,
            "joined_at": time.time(),
            "left_at": None,
            "speaking_seconds": 0.0,
        }
        if role == "host":
            await self.lobby.host_arrived(participant)
        await self.broadcast(
            {"type": "participant_joined", "participant": participant.describe()},
            exclude=participant.id,
        )
        self.join_gate.started(participant.id)  # until its publisher is connected
        participant.request_renegotiation()
        participant.log.info("participant joined", name_length=len(name), role=role)
        if first:
            self.started = True
            self.opened_at = time.time()  # the meeting starts with its first participant
            self.manager.emit(self, "room.started", {})
            await recording_control.on_first_join(self)
        self.manager.emit(
            self,
            "participant.joined",
            {"participant": {"id": participant.id, "name": name, "role": role, "user_id": user_id}},
        )
        return participant

    async def published(self, participant: Participant, pubs: list[Publication]) -> None:
        if not pubs:
            return
        recording_control.on_published(self, pubs)
        if any(p.source == "screen" for p in pubs):
            await self.apply_last_n()  # a sharer's camera is exempt from last-N
        await self.broadcast(
            {
                "type": "publications_added",
                "participant_id": participant.id,
                "publications": [p.describe() for p in pubs],
            },
            exclude=participant.id,
        )
        for other in self.participants.values():
            if other is not participant:
                other.request_renegotiation()

    async def leave(self, participant: Participant, reason: str = "left") -> None:
        if self.participants.pop(participant.id, None) is None:
            return
        self.join_gate.finished(participant.id)
        self.speaker_order.left(participant.id)
        self.pins.left(participant.id)
        await self.apply_last_n()
        self.manager.metrics.participants.dec()
        await self.broadcast(
            {"type": "participant_left", "participant_id": participant.id, "reason": reason}
        )
        await participant.close()
        for other in self.participants.values():
            other.request_renegotiation()
        if participant.role == "host":
            await self.lobby.host_left()
        record = self.attendance.get(participant.id)
        if record is not None:
            record["left_at"] = time.time()
            record["speaking_seconds"] = round(participant.speaking_seconds, 2)
        if not self.participants:
            self.empty_since = asyncio.get_running_loop().time()
        participant.log.info("participant left", reason=reason)
        self.manager.emit(
            self,
            "participant.left",
            {
                "participant": {
                    "id": participant.id,
                    "name": participant.name,
                    "role": participant.role,
                    "user_id": participant.user_id,
                },
                "reason": reason,
            },
        )

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        metrics = self.manager.metrics
        timeout = self.manager.config.rooms.empty_timeout_seconds
        while not self.closed:
            sleeper = self._sleeper = loop.create_future()
            wake = loop.call_later(
                TICK_SECONDS if self._fast else IDLE_TICK_SECONDS, _wake, sleeper
            )
            try:
                await sleeper
            finally:
                wake.cancel()
                self._sleeper = None
            self._fast = False
            now = loop.time()
            if (
                self.empty_since is not None
                and not self.lobby.knocks
                and now - self.empty_since >= timeout
            ):
                await self.manager.close_room(self, "empty")
                return
            if now - self._last_speaker >= SPEAKER_INTERVAL:
                self._last_speaker = now
                await self._speakers(now)
            report_due = now - self._last_report >= REPORT_INTERVAL
            if report_due:
                self._last_report = now
            for p in list(self.participants.values()):
                try:
                    p.tick_reports(now)
                    if report_due or p.publications:  # nothing else to do between reports
                        await p.tick(now, report_due)
                    if not self._fast:
                        self._fast = any(pub.pending for pub in p.publications.values())
                except Exception:
                    p.log.exception("tick failed")
                if report_due:  # counters to Prometheus once a second
                    for pub in p.publications.values():
                        pub.flush_metrics(metrics)

    async def _speakers(self, now: float) -> None:
        """Active-speaker signal and speaking-time statistics, to admitted people only."""
        loudest = max(self.participants.values(), key=lambda p: p.recent_speech, default=None)
        speaker = loudest.id if loudest is not None and loudest.recent_speech >= 0.15 else None
        for p in self.participants.values():
            p.recent_speech *= 0.5
        if speaker != self.active_speaker and (speaker is not None or self.active_speaker):
            self.active_speaker = speaker
            await self.broadcast({"type": "active_speaker", "participant_id": speaker})
            if speaker is not None and self.speaker_order.spoke(speaker):
                await self.apply_last_n()
        if now - self._last_stats >= STATS_INTERVAL:
            self._last_stats = now
            stats = {p.id: round(p.speaking_seconds, 2) for p in self.participants.values()}
            if stats and stats != self._stats_sent:
                self._stats_sent = stats
                await self.broadcast({"type": "speaking_stats", "speaking_seconds": stats})

    async def pin(self, subscriber: Participant, participant_id: str, pinned: bool) -> list[str]:
        """``pin``: exempt ``participant_id``'s camera from ``subscriber``'s last-N (or
        stop); returns its pins. Refused: yourself, not here, over the limit."""
        if self.pins.set(subscriber.id, participant_id, pinned, self.speaker_order):
            await self.apply_last_n()
        return list(self.pins.of(subscriber.id))

    async def apply_last_n(self) -> None:
        """Recompute whose camera video each participant gets (``rooms.last_n``): the
        last N speakers, its pins, and whoever shares a screen (an unmuted one)."""
        n = self.manager.config.rooms.last_n
        if not n:
            return
        now = asyncio.get_running_loop().time()
        sharing = [
            p.id
            for p in self.participants.values()
            if any(pub.source == "screen" and not pub.muted for pub in p.publications.values())
        ]
        for p in list(self.participants.values()):
            visible = video_from(
                self.speaker_order, p.id, n, pinned=self.pins.of(p.id), sharing=sharing
            )
            if visible == p.video_from:
                continue
            p.video_from = visible
            for sub in list(p.subscriptions.values()):
                await sub.size_changed(p.rendered_size(sub.publication), now)

    def report(self, reason: str) -> dict[str, Any]:
        """Attendance and speaking time of this meeting."""
        now = time.time()
        for p in self.participants.values():
            record = self.attendance.get(p.id)
            if record is not None:
                record["speaking_seconds"] = round(p.speaking_seconds, 2)
        return {
            "room_id": self.id,
            "link_id": self.link_id,
            "started_at": self.opened_at,
            "finished_at": now,
            "reason": reason,
            "participants": [
                {**r, "left_at": r["left_at"] or now} for r in self.attendance.values()
            ],
        }

    async def close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        await self.lobby.close(reason)
        await recording_control.stop_recording(self, "room_closed")
        for p in list(self.participants.values()):
            with contextlib.suppress(Exception):
                await p.send({"type": "room_closed", "reason": reason})
            await self.leave(p, reason)
        if self._ticker is not asyncio.current_task():
            self._ticker.cancel()
        self.join_gate.close()
        self.log.info("room closed", reason=reason)
        if self.started:
            report = self.report(reason)
            self.manager.emit(
                self,
                "room.finished",
                {
                    "reason": reason,
                    "duration_seconds": round(time.time() - self.opened_at, 3),
                    "report": report,
                },
            )


def _wake(sleeper: asyncio.Future[None]) -> None:
    if not sleeper.done():
        sleeper.set_result(None)
