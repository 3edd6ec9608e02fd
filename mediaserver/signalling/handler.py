"""Signalling dispatch for one connection: frames in, messages out, no sockets.

Every malformed input gets an ``error`` message with a code; the connection stays open
and its room is unaffected. See docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..limits import Busy
from ..lobby import moderation
from ..lobby.lobby import Knock
from ..logthrottle import LogThrottle
from ..recording.control import RecordingRefused, start_recording, stop_recording
from ..sfu.base import Refused
from ..sfu.negotiation import SdpError
from ..sfu.participant import Participant
from ..sfu.room import Room
from ..sfu.rooms import RoomManager
from ..sfu.sdp_limits import ANSWER_BYTES_PER_MLINE
from ..telemetry import get_logger
from . import messages as m
from .joining import Joining

__all__ = ["SignallingSession"]

if TYPE_CHECKING:
    from linkapi.service import LinkService

Send = Callable[[dict[str, Any]], Awaitable[None]]
#: Room for the JSON around a subscribe answer's SDP (type, revision, id, escapes).
ANSWER_JSON_BYTES = 4096
#: How long a join's publisher connection is watched for the join latency metric.
JOIN_WATCH_SECONDS = 60.0


class SignallingSession(Joining):
    """The state of one signalling connection: new → hello → joined → closed."""

    def __init__(
        self,
        manager: RoomManager,
        send: Send,
        *,
        max_message_bytes: int,
        links: LinkService | None = None,
        disconnect: Callable[[], Awaitable[None]] | None = None,
        peer: str = "",
        room_token_secret: bytes | None = None,
    ) -> None:
        self.manager = manager
        self.links = links
        #: The key that signs room tokens; None: ad-hoc rooms are disabled.
        self.room_token_secret = room_token_secret
        self.peer = peer
        self.knock: Knock | None = None
        self._knock_room: Room | None = None

        async def _nothing() -> None:
            return None

        self.disconnect: Callable[[], Awaitable[None]] = disconnect or _nothing
        self._send = send
        self.max_message_bytes = max_message_bytes
        self.version: int | None = None
        self.participant: Participant | None = None
        self.ever_joined = False
        self.closed = False
        self.log = get_logger()
        self.throttled_log = LogThrottle(self.log)  # client-triggerable lines
        self._lock = asyncio.Lock()  # one message at a time, in order
        #: When the frame being handled arrived (the join latency starts there).
        self._frame_at = 0.0
        #: The join's arrival time until its first publisher connection is watched.
        self._join_at: float | None = None
        self._timers: set[asyncio.Task[None]] = set()

    async def send(self, message: dict[str, Any]) -> None:
        if self.closed:
            return
        if "ref" in message and message["ref"] is None:
            message = {k: v for k, v in message.items() if k != "ref"}
        try:
            await self._send(message)
        except Exception:  # the socket went away: the reader side will notice
            self.log.debug("send failed", type=message.get("type"))

    async def send_error(
        self, code: str, message: str, ref: str | int | None = None, **details: Any
    ) -> None:
        self.manager.metrics.signalling_errors.labels(code).inc()
        await self.send({**m.error(code, message, ref), **details})

    async def on_frame(self, raw: str | bytes) -> bool:
        """Handle one frame. Returns False when the connection should close."""
        self._frame_at = time.perf_counter()
        size = len(raw)
        limit = self._frame_limit()
        if isinstance(raw, str) and size * 4 > self.max_message_bytes:
            size = len(raw.encode("utf-8", "surrogatepass"))
        if size > limit:
            await self.send_error(
                m.ErrorCode.MESSAGE_TOO_LARGE, f"message of {size} bytes exceeds {limit}"
            )
            return True
        ref: str | int | None = None
        try:
            obj = m.decode(raw)
            ref = m.valid_ref(obj.get("id"))
            msg = m.parse(obj)
            if size > self.max_message_bytes and not isinstance(msg, m.SubscribeAnswer):
                raise m.ProtocolError(
                    m.ErrorCode.MESSAGE_TOO_LARGE,
                    f"message of {size} bytes exceeds {self.max_message_bytes}",
                )
            async with self._lock:
                return await self._dispatch(msg)
        except m.ProtocolError as exc:
            await self.send_error(exc.code, exc.message, m.valid_ref(exc.ref) or ref)
        except SdpError as exc:
            await self.send_error(m.ErrorCode.INVALID_SDP, str(exc), ref)
        except Busy:
            await self.send_error(
                m.ErrorCode.BUSY, "the server is busy negotiating: try again in a moment", ref
            )
        except Refused as exc:
            await self.send_error(exc.code, exc.message, ref, **exc.details)
        except Exception:
            self.throttled_log.exception("signalling handler failed")
            await self.send_error(m.ErrorCode.INTERNAL, "internal error", ref)
        return True

    def _frame_limit(self) -> int:
        """``max_message_bytes``; while a subscribe offer of ours waits for its answer,
        also the answer's own bound (it grows with the room: two m-lines per audio +
        video publisher, ``ANSWER_BYTES_PER_MLINE`` each, plus the JSON around it), so
        that a big room needs no bigger limit for every other message."""
        p = self.participant
        if p is None or p.subscriber is None or not p.negotiation.outstanding:
            return self.max_message_bytes
        answer = p.subscriber.offered_mlines * ANSWER_BYTES_PER_MLINE + ANSWER_JSON_BYTES
        return max(self.max_message_bytes, min(answer, m.MAX_ANSWER_SDP_CHARS))

    async def _dispatch(self, msg: m.ClientMessage) -> bool:
        if isinstance(msg, m.Hello):
            if self.version is not None:
                raise m.ProtocolError(m.ErrorCode.BAD_STATE, "hello: already received")
            if msg.version != m.PROTOCOL_VERSION:
                raise m.ProtocolError(
                    m.ErrorCode.UNSUPPORTED_VERSION,
                    f"hello: version {msg.version} not supported (supported: {m.PROTOCOL_VERSION})",
                )
            self.version = msg.version
            await self.send({"type": "welcome", "version": m.PROTOCOL_VERSION, "ref": msg.id})
            return True
        if self.version is None:
            raise m.ProtocolError(
                m.ErrorCode.HELLO_REQUIRED, f"{msg.TYPE}: send hello with the version first"
            )
        if isinstance(msg, m.Ping):
            await self.send({"type": "pong", "ref": msg.id})
            return True
        if isinstance(msg, m.Join):
            if self.knock is not None:
                raise m.ProtocolError(m.ErrorCode.ALREADY_JOINED, "join: already waiting")
            if self.participant is not None and not self.participant.closed:
                raise m.ProtocolError(m.ErrorCode.ALREADY_JOINED, "join: already in a room")
            wait = self.manager.join_rate.take(self.peer, time.monotonic())
            if wait:
                raise Refused(
                    m.ErrorCode.RATE_LIMITED,
                    f"join: too many joins from your address; retry in {wait:.1f}s",
                    retry_after=round(wait, 1),
                )
            started = time.perf_counter()
            received = self._frame_at
            if msg.link is not None:
                joined = await self._join_link(msg)
                if joined is None:  # waiting in the lobby
                    return True
                self.participant = joined
            else:
                claims = self.room_claims(msg)
                # no await from here to Room.join or the knock (as for links)
                room = self.manager.room(claims.room_id)
                who = self._identity(claims.room_id, msg.key, user_id=claims.user_id)
                joined = await self._admit(
                    room, msg.id, role=claims.role, name=claims.name, who=who
                )
                if joined is None:  # waiting in the lobby
                    return True
                self.participant = joined
            self._joined(self.participant)
            self._join_at = received
            self.manager.metrics.join_duration.observe(time.perf_counter() - started)
            return True
        if isinstance(msg, m.Leave) and self.knock is not None:
            await self.send({"type": "left", "ref": msg.id})
            await self.close("left")
            return False
        if self.participant is not None and self.participant.closed:
            self.participant = None  # its room closed: the connection may join again
        participant = self.participant
        if participant is None:
            if self.knock is not None:
                raise m.ProtocolError(
                    m.ErrorCode.NOT_ADMITTED, f"{msg.TYPE}: wait until a host admits you"
                )
            raise m.ProtocolError(m.ErrorCode.NOT_JOINED, f"{msg.TYPE}: join a room first")
        if isinstance(msg, m.HOST_MESSAGES):
            await self._moderate(participant, msg)
            return True
        if isinstance(msg, m.Publish):
            if not participant.publish_bucket.take(time.monotonic()):
                wait = participant.publish_bucket.retry_after()
                raise Refused(
                    m.ErrorCode.RATE_LIMITED,
                    f"publish: too many publication changes; retry in {wait:.1f}s",
                    retry_after=round(wait, 1),
                )
            async with self.manager.sdp_work.slot():
                answer, added = await participant.publish(
                    msg.sdp, restart=msg.restart, sources=msg.sources
                )
            if self._join_at is not None and participant.publisher is not None:
                self._time_join(self._join_at, participant.publisher.connected)
                self._join_at = None
            await self.send(
                {
                    "type": "publish_answer",
                    "sdp": answer,
                    "ref": msg.id,
                    "publications": [
                        {"mid": p.track.mid, **p.describe()}
                        for p in participant.publications.values()
                    ],
                }
            )
            await participant.room.published(participant, added)
        elif isinstance(msg, m.RestartSubscriber):
            participant.restart_subscriber()
            await self.send({"type": "subscriber_restarting", "ref": msg.id})
        elif isinstance(msg, m.SubscribeAnswer):
            async with self.manager.sdp_work.slot(wait=True):  # never refuse our own offer
                await participant.apply_subscribe_answer(msg.sdp, msg.revision)
        elif isinstance(msg, m.IceCandidate):
            await participant.add_ice_candidate(msg.target, msg.candidate)
        elif isinstance(msg, m.Mute):
            pub = participant.publications.get(msg.publication_id)
            if pub is None:
                raise m.ProtocolError(
                    m.ErrorCode.NOT_FOUND, f"mute: no publication {msg.publication_id!r} of yours"
                )
            if not msg.muted and pub.kind in participant.locked_kinds:
                raise m.ProtocolError(
                    m.ErrorCode.LOCKED_BY_HOST, f"mute: a host locked your {pub.kind}"
                )
            if pub.muted != msg.muted:
                pub.set_muted(msg.muted)
                await participant.room.broadcast(
                    {
                        "type": "publication_muted",
                        "participant_id": participant.id,
                        "publication_id": pub.id,
                        "muted": msg.muted,
                    }
                )
                if pub.source == "screen":
                    await participant.room.apply_last_n()  # a sharer's camera: exempt
        elif isinstance(msg, m.Pin):
            pins = await participant.room.pin(participant, msg.participant_id, msg.pinned)
            await self.send({"type": "pins", "participant_ids": pins, "ref": msg.id})
        elif isinstance(msg, m.VideoSize):
            room = participant.room
            if not any(msg.publication_id in p.publications for p in room.participants.values()):
                raise m.ProtocolError(
                    m.ErrorCode.NOT_FOUND, f"video_size: no publication {msg.publication_id!r}"
                )
            sizes = participant.video_sizes
            if len(sizes) >= 256 and msg.publication_id not in sizes:  # forget closed ones
                live = {i for p in room.participants.values() for i in p.publications}
                for key in [k for k in sizes if k not in live]:
                    del sizes[key]
            sizes[msg.publication_id] = (msg.width, msg.height)
            sub = participant.subscriptions.get(msg.publication_id)
            if sub is not None:
                loop_now = asyncio.get_running_loop().time()
                await sub.size_changed(participant.rendered_size(sub.publication), loop_now)
        elif isinstance(msg, m.Leave):
            await self.send({"type": "left", "ref": msg.id})
            await self.close("left")
            return False
        return True

    async def _moderate(self, host: Participant, msg: m.ClientMessage) -> None:
        if host.role != "host":
            raise m.ProtocolError(m.ErrorCode.FORBIDDEN, f"{msg.TYPE}: only hosts may do this")
        room = host.room
        if isinstance(msg, m.Admit):
            if msg.knock_id not in room.lobby.knocks:
                raise m.ProtocolError(m.ErrorCode.NOT_FOUND, f"admit: no knock {msg.knock_id!r}")
            await room.lobby.admit(msg.knock_id)  # a failure is reported as knock_withdrawn
        elif isinstance(msg, m.AdmitAll):
            await room.lobby.admit_all()
        elif isinstance(msg, m.Refuse):
            if not await room.lobby.refuse(msg.knock_id, msg.message):
                raise m.ProtocolError(m.ErrorCode.NOT_FOUND, f"refuse: no knock {msg.knock_id!r}")
        elif isinstance(msg, m.SetGuestPolicy):
            await moderation.set_guest_policy(room, host, msg.policy)
        elif isinstance(msg, m.MuteAll):
            await moderation.mute_all(room, host, msg.kind, lock=msg.lock)
        elif isinstance(msg, m.UnlockMedia):
            await moderation.unlock_media(room, host, msg.kind)
        elif isinstance(msg, m.RemoveParticipant):
            target = room.participants.get(msg.participant_id)
            if target is None or target is host:
                raise m.ProtocolError(
                    m.ErrorCode.NOT_FOUND,
                    f"remove_participant: no other participant {msg.participant_id!r}",
                )
            await moderation.remove_participant(room, host, target)
        elif isinstance(msg, m.LockRoom):
            await moderation.lock_room(room, host, msg.locked)
        elif isinstance(msg, m.EndMeeting):
            await moderation.end_meeting(room, host)
        elif isinstance(msg, m.SetRecording):
            await _set_recording(room, host, msg.active)
        elif isinstance(msg, m.StopScreenShare):
            target = room.participants.get(msg.participant_id)
            if target is None:
                raise m.ProtocolError(
                    m.ErrorCode.NOT_FOUND,
                    f"stop_screen_share: no participant {msg.participant_id!r}",
                )
            await moderation.stop_screen_share(room, host, target)
        await self.send({"type": "done", "ref": msg.id, "action": msg.TYPE})

    def _time_join(self, received: float, connected: asyncio.Event) -> None:
        """Observe join → publisher connected (mediaserver_join_connected_seconds)."""
        histogram = self.manager.metrics.join_connected

        async def watch() -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(connected.wait(), JOIN_WATCH_SECONDS)
                histogram.observe(time.perf_counter() - received)

        task = asyncio.ensure_future(watch())
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    async def close(self, reason: str = "disconnected") -> None:
        for task in list(self._timers):
            task.cancel()
        participant, self.participant = self.participant, None
        knock, self.knock = self.knock, None
        if knock is not None and self._knock_room is not None:
            await self._knock_room.lobby.withdraw(knock)
        if participant is not None:
            await participant.room.leave(participant, reason)
        self.closed = True


async def _set_recording(room: Room, host: Participant, active: bool) -> None:
    """Host: start or stop the recording (the link's policy must allow it)."""
    if active:
        try:
            await start_recording(room, host)
        except RecordingRefused as exc:
            raise m.ProtocolError(exc.code, f"set_recording: {exc.message}") from None
    else:
        if room.recording_policy == "always":
            raise m.ProtocolError(
                m.ErrorCode.FORBIDDEN, "set_recording: this meeting is always recorded"
            )
        await stop_recording(room, "stopped_by_host")
