"""Signalling dispatch for one connection: frames in, messages out, no sockets.

Every malformed input gets an ``error`` message with a code; the connection stays open
and its room is unaffected. See docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..lobby import decide_admission, effective_guest_policy, moderation
from ..lobby.lobby import Knock
from ..sfu.base import Refused
from ..sfu.negotiation import SdpError
from ..sfu.participant import Participant
from ..sfu.room import Room, RoomManager
from ..telemetry import get_logger
from . import messages as m

__all__ = ["SignallingSession"]

if TYPE_CHECKING:
    from linkapi.service import LinkService

Send = Callable[[dict[str, Any]], Awaitable[None]]


class SignallingSession:
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
    ) -> None:
        self.manager = manager
        self.links = links
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
        self._lock = asyncio.Lock()  # one message at a time, in order

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
        size = len(raw)
        if isinstance(raw, str) and size * 4 > self.max_message_bytes:
            size = len(raw.encode("utf-8", "surrogatepass"))
        if size > self.max_message_bytes:
            await self.send_error(
                m.ErrorCode.MESSAGE_TOO_LARGE,
                f"message of {size} bytes exceeds {self.max_message_bytes}",
            )
            return True
        ref: str | int | None = None
        try:
            obj = m.decode(raw)
            ref = m.valid_ref(obj.get("id"))
            msg = m.parse(obj)
            async with self._lock:
                return await self._dispatch(msg)
        except m.ProtocolError as exc:
            await self.send_error(exc.code, exc.message, m.valid_ref(exc.ref) or ref)
        except SdpError as exc:
            await self.send_error(m.ErrorCode.INVALID_SDP, str(exc), ref)
        except Refused as exc:
            await self.send_error(exc.code, exc.message, ref, **exc.details)
        except Exception:
            self.log.exception("signalling handler failed")
            await self.send_error(m.ErrorCode.INTERNAL, "internal error", ref)
        return True

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
            started = time.perf_counter()
            if msg.link is not None:
                joined = await self._join_link(msg)
                if joined is None:  # waiting in the lobby
                    return True
                self.participant = joined
            else:
                assert msg.room is not None and msg.name is not None
                room = self.manager.room(msg.room)
                self.participant = await room.join(
                    msg.name.strip(), self.send, msg.id, bar_key=self._bar_key(None, msg.name)
                )
            self._joined(self.participant)
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
            answer, added = await participant.publish(msg.sdp, restart=msg.restart)
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
        elif isinstance(msg, m.Leave):
            await self.send({"type": "left", "ref": msg.id})
            await self.close("left")
            return False
        return True

    def _bar_key(self, user_id: str | None, name: str | None) -> str:
        """Who a removal bars: the signed-in user, else this address + display name."""
        if user_id:
            return f"user:{user_id}"
        return f"guest:{self.peer}:{(name or '').strip().casefold()}"

    def _joined(self, participant: Participant) -> None:
        self.participant = participant
        self.knock = None
        self.ever_joined = True
        self.log = participant.log
        participant.disconnect = self.disconnect

    async def _join_link(self, msg: m.Join) -> Participant | None:
        """Join through a link: admitted now (participant), or waiting (None)."""
        if self.links is None:
            raise m.ProtocolError(m.ErrorCode.BAD_STATE, "join: the link API is disabled")
        assert msg.link is not None
        grant = await self.links.resolve_join(  # raises Refused (with details)
            msg.link, token=msg.token, invite=msg.invite, name=msg.name
        )
        link = grant.link
        room = self.manager.room(link.id)
        if room.link_id is None:  # a new meeting: settings from the link
            room.link_id = link.id
            room.tenant_id = link.tenant_id
            room.max_participants = int(link.options.get("max_participants") or 0)
            room.max_guests = int(link.options.get("max_guests") or 0)
            room.guest_policy = effective_guest_policy(link.options)
            room.share_url = self.links.join_url(link)
            room.title = str(link.event.get("summary") or "")
        invite = grant.via_invite
        bar_key = self._bar_key(
            grant.user_id, f"{grant.name}:{invite.id}" if invite else grant.name
        )
        decision = decide_admission(
            role=grant.role,
            guest_policy=room.guest_policy,
            locked=room.locked,
            barred=bar_key in room.barred,
            guests_in_room=sum(1 for p in room.participants.values() if p.role == "guest"),
            max_guests=room.max_guests,
        )
        if decision.action == "refuse":
            raise Refused(decision.code, decision.message)
        invite_id = invite.id if invite else None
        invite_limit = invite.max_guests if invite else 0
        if decision.action == "admit":
            return await room.join(
                grant.name,
                self.send,
                msg.id,
                role=grant.role,
                user_id=grant.user_id,
                invite_id=invite_id,
                invite_limit=invite_limit,
                bar_key=bar_key,
            )
        if invite is not None:  # the invite's cap holds for the waiting room too
            waiting = sum(1 for k in room.lobby.knocks.values() if k.invite_id == invite.id)
            inside = sum(1 for p in room.participants.values() if p.invite_id == invite.id)
            if waiting + inside >= invite.max_guests:
                raise Refused(
                    "invite_full", f"this guest invite admits {invite.max_guests} guests at once"
                )
        self.knock = await room.lobby.knock(
            Knock(
                name=grant.name,
                send=self.send,
                on_admitted=self._joined,
                disconnect=self.disconnect,
                user_id=grant.user_id,
                invite_id=invite_id,
                invite_limit=invite_limit,
                bar_key=bar_key,
            ),
            msg.id,
        )
        self._knock_room = room
        self.ever_joined = True  # waiting in a lobby is not idling: no join timeout
        return None

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
        await self.send({"type": "done", "ref": msg.id, "action": msg.TYPE})

    async def close(self, reason: str = "disconnected") -> None:
        participant, self.participant = self.participant, None
        knock, self.knock = self.knock, None
        if knock is not None and self._knock_room is not None:
            await self._knock_room.lobby.withdraw(knock)
        if participant is not None:
            await participant.room.leave(participant, reason)
        self.closed = True
