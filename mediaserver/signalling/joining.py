"""Joining, for one signalling connection: a room token checked (ad-hoc rooms), a link
resolved (meeting links), who is joining (the removal bar's identity), and the
admission decision — admitted now or waiting in the room's lobby (docs/protocol.md
§11-§12). Mixed into :class:`~.handler.SignallingSession`, which holds the state
declared here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from linkapi.secrets_ import ExpiredToken, InvalidToken, RoomClaims, verify_room_token

from ..lobby import decide_admission, effective_guest_policy
from ..lobby.identity import Identity, normalise_name
from ..lobby.keys import new_client_id, read_key
from ..lobby.lobby import Knock
from ..lobby.policy import link_role
from ..logthrottle import LogThrottle
from ..sfu.base import Refused
from ..sfu.participant import Participant
from ..sfu.room import Room
from ..sfu.rooms import RoomManager
from ..state.models import GuestInvite
from . import messages as m

if TYPE_CHECKING:
    from linkapi.service import LinkService

__all__ = ["Joining"]


class Joining:
    """The join steps of a signalling session."""

    manager: RoomManager
    links: LinkService | None
    room_token_secret: bytes | None
    peer: str
    knock: Knock | None
    _knock_room: Room | None
    participant: Participant | None
    ever_joined: bool
    log: Any
    throttled_log: LogThrottle

    async def send(self, message: dict[str, Any]) -> None:
        raise NotImplementedError

    disconnect: Callable[[], Awaitable[None]]

    def room_claims(self, msg: m.Join) -> RoomClaims:
        """What the room token of a join by room id grants, or the precise refusal.
        Checked before any room is looked up or created (also before a cluster node
        places the room: see websocket._place)."""
        assert msg.room is not None
        if self.room_token_secret is None:
            raise m.ProtocolError(
                m.ErrorCode.ADHOC_DISABLED,
                "join: this server has no ad-hoc rooms; join through a meeting link",
            )
        if msg.token is None:
            raise m.ProtocolError(
                m.ErrorCode.TOKEN_REQUIRED, "join: a room token is required to join by room"
            )
        try:
            return verify_room_token(self.room_token_secret, msg.token, room=msg.room)
        except ExpiredToken:
            raise m.ProtocolError(
                m.ErrorCode.TOKEN_EXPIRED, "join: room token rejected: token expired"
            ) from None
        except InvalidToken as exc:
            raise m.ProtocolError(
                m.ErrorCode.INVALID_TOKEN, f"join: room token rejected: {exc}"
            ) from None

    def _identity(
        self,
        room_id: str,
        key: str | None,
        *,
        user_id: str | None = None,
        name_key: str = "",
        invite_id: str | None = None,
        via_host_link: bool = False,
    ) -> Identity:
        """Who is joining, for the removal bar: the client id of a genuine participant
        key for this room (anything else is ignored: a fresh id), and the rest."""
        client_id = read_key(self.manager.key_secret, room_id, key) if key else None
        return Identity(
            client_id or new_client_id(),
            user_id=user_id,
            name_key=name_key,
            invite_id=invite_id,
            via_host_link=via_host_link,
        )

    def _joined(self, participant: Participant) -> None:
        self.participant = participant
        self.knock = None
        self.ever_joined = True
        self.log = participant.log
        self.throttled_log.log = participant.log
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
        # From here to Room.join or the knock there is no await: the revocation check
        # in manager.room() and the admission are one step (docs/architecture.md).
        room = self.manager.room(link.id)
        if room.link_id is None:  # a new meeting: settings from the link
            room.link_id = link.id
            room.tenant_id = link.tenant_id
            room.max_participants = int(link.options.get("max_participants") or 0)
            room.max_guests = int(link.options.get("max_guests") or 0)
            room.guest_policy = effective_guest_policy(link.options)
            room.share_url = self.links.join_url(link)
            room.title = str(link.event.get("summary") or "")
            room.recording_policy = str(link.options.get("recording") or "off")
        invite = grant.via_invite
        via_host_link = grant.role == "host" and grant.user_id is None
        who = self._identity(
            link.id,
            msg.key,
            user_id=grant.user_id,
            # names chosen by the person (not a token's, not the invite's "Guest")
            name_key=normalise_name(grant.name) if not grant.user_id and not invite else "",
            invite_id=invite.id if invite else None,
            via_host_link=via_host_link,
        )
        role = link_role(
            grant.role,
            via_host_link=via_host_link,
            host_link_suspended=room.bar.host_link_suspended,
        )
        return await self._admit(room, msg.id, role=role, name=grant.name, who=who, invite=invite)

    async def _admit(
        self,
        room: Room,
        ref: str | int | None,
        *,
        role: str,
        name: str,
        who: Identity,
        invite: GuestInvite | None = None,
    ) -> Participant | None:
        """The admission decision (docs/protocol.md §12): admitted now (participant),
        waiting in the lobby (None), or refused (raises)."""
        decision = decide_admission(
            role=role,
            guest_policy=room.guest_policy,
            locked=room.locked,
            barred=room.bar.bars(who),
            guests_in_room=sum(1 for p in room.participants.values() if p.role == "guest"),
            max_guests=room.max_guests,
        )
        if decision.action == "refuse":
            raise Refused(decision.code, decision.message)
        invite_limit = invite.max_guests if invite else 0
        if decision.action == "admit":
            return await room.join(
                name,
                self.send,
                ref,
                role=role,
                identity=who,
                invite_limit=invite_limit,
            )
        if invite is not None:  # the invite's cap holds for the waiting room too
            knocks = room.lobby.knocks.values()
            waiting = sum(1 for k in knocks if k.identity.invite_id == invite.id)
            inside = sum(1 for p in room.participants.values() if p.invite_id == invite.id)
            if waiting + inside >= invite.max_guests:
                raise Refused(
                    "invite_full", f"this guest invite admits {invite.max_guests} guests at once"
                )
        self.knock = await room.lobby.knock(
            Knock(
                name=name,
                send=self.send,
                on_admitted=self._joined,
                disconnect=self.disconnect,
                identity=who,
                invite_limit=invite_limit,
                address=self.peer,
            ),
            ref,
        )
        self._knock_room = room
        self.ever_joined = True  # waiting in a lobby is not idling: no join timeout
        return None
