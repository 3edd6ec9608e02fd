"""Signalling dispatch for one connection: frames in, messages out, no sockets.

Every malformed input gets an ``error`` message with a code; the connection stays open
and its room is unaffected. See docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..sfu.negotiation import SdpError
from ..sfu.room import Participant, Refused, RoomManager
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
    ) -> None:
        self.manager = manager
        self.links = links
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
            if self.participant is not None and not self.participant.closed:
                raise m.ProtocolError(m.ErrorCode.ALREADY_JOINED, "join: already in a room")
            started = time.perf_counter()
            if msg.link is not None:
                self.participant = await self._join_link(msg)
            else:
                assert msg.room is not None and msg.name is not None
                room = self.manager.room(msg.room)
                self.participant = await room.join(msg.name.strip(), self.send, msg.id)
            self.ever_joined = True
            self.manager.metrics.join_duration.observe(time.perf_counter() - started)
            self.log = self.participant.log
            return True
        if self.participant is not None and self.participant.closed:
            self.participant = None  # its room closed: the connection may join again
        participant = self.participant
        if participant is None:
            raise m.ProtocolError(m.ErrorCode.NOT_JOINED, f"{msg.TYPE}: join a room first")
        if isinstance(msg, m.Publish):
            answer, added = await participant.publish(msg.sdp)
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

    async def _join_link(self, msg: m.Join) -> Participant:
        if self.links is None:
            raise m.ProtocolError(m.ErrorCode.BAD_STATE, "join: the link API is disabled")
        assert msg.link is not None
        grant = await self.links.resolve_join(  # raises Refused (with details)
            msg.link, token=msg.token, invite=msg.invite, name=msg.name
        )
        link = grant.link
        room = self.manager.room(link.id)
        room.link_id = link.id
        room.tenant_id = link.tenant_id
        room.max_participants = int(link.options.get("max_participants") or 0)
        invite = grant.via_invite
        return await room.join(
            grant.name,
            self.send,
            msg.id,
            role=grant.role,
            user_id=grant.user_id,
            invite_id=invite.id if invite else None,
            invite_limit=invite.max_guests if invite else 0,
        )

    async def close(self, reason: str = "disconnected") -> None:
        participant, self.participant = self.participant, None
        if participant is not None:
            await participant.room.leave(participant, reason)
        self.closed = True
