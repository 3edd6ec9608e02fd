"""Signalling protocol v1: the host's messages (the lobby, moderation, locking,
ending and recording the meeting)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .message_base import ClientMessage, check_str
from .protocol_errors import ErrorCode, ProtocolError

__all__ = [
    "HOST_MESSAGES",
    "Admit",
    "AdmitAll",
    "EndMeeting",
    "LockRoom",
    "MuteAll",
    "Refuse",
    "RemoveParticipant",
    "SetGuestPolicy",
    "SetRecording",
    "StopScreenShare",
    "UnlockMedia",
]


@dataclass(frozen=True, slots=True)
class Admit(ClientMessage):
    """Host: let one waiting guest in."""

    TYPE: ClassVar[str] = "admit"
    knock_id: str = ""

    def validate(self) -> None:
        check_str("knock_id", self.knock_id, max_len=64)


@dataclass(frozen=True, slots=True)
class AdmitAll(ClientMessage):
    """Host: let every waiting guest in."""

    TYPE: ClassVar[str] = "admit_all"


@dataclass(frozen=True, slots=True)
class Refuse(ClientMessage):
    """Host: turn a waiting guest away (the message is shown to them)."""

    TYPE: ClassVar[str] = "refuse"
    knock_id: str = ""
    message: str = ""

    def validate(self) -> None:
        check_str("knock_id", self.knock_id, max_len=64)
        check_str("message", self.message, max_len=500, allow_empty=True)


@dataclass(frozen=True, slots=True)
class SetGuestPolicy(ClientMessage):
    """Host: change the guest policy live (allow | lobby | deny)."""

    TYPE: ClassVar[str] = "set_guest_policy"
    policy: str = ""

    def validate(self) -> None:
        if self.policy not in ("allow", "lobby", "deny"):
            raise ProtocolError(ErrorCode.INVALID_FIELD, "policy: expected allow, lobby or deny")


@dataclass(frozen=True, slots=True)
class MuteAll(ClientMessage):
    """Host: stop every microphone (kind audio) or camera (kind video) but their own."""

    TYPE: ClassVar[str] = "mute_all"
    kind: str = ""
    lock: bool = False

    def validate(self) -> None:
        if self.kind not in ("audio", "video"):
            raise ProtocolError(ErrorCode.INVALID_FIELD, "kind: expected audio or video")
        if not isinstance(self.lock, bool):
            raise ProtocolError(ErrorCode.INVALID_FIELD, "lock: expected boolean")


@dataclass(frozen=True, slots=True)
class UnlockMedia(ClientMessage):
    """Host: let participants turn ``kind`` back on themselves."""

    TYPE: ClassVar[str] = "unlock_media"
    kind: str = ""

    def validate(self) -> None:
        if self.kind not in ("audio", "video"):
            raise ProtocolError(ErrorCode.INVALID_FIELD, "kind: expected audio or video")


@dataclass(frozen=True, slots=True)
class RemoveParticipant(ClientMessage):
    """Host: remove a participant; they cannot come back to this meeting."""

    TYPE: ClassVar[str] = "remove_participant"
    participant_id: str = ""

    def validate(self) -> None:
        check_str("participant_id", self.participant_id, max_len=64)


@dataclass(frozen=True, slots=True)
class LockRoom(ClientMessage):
    """Host: lock (no new guests or knocks) or unlock the room."""

    TYPE: ClassVar[str] = "lock_room"
    locked: bool = True

    def validate(self) -> None:
        if not isinstance(self.locked, bool):
            raise ProtocolError(ErrorCode.INVALID_FIELD, "locked: expected boolean")


@dataclass(frozen=True, slots=True)
class StopScreenShare(ClientMessage):
    """Host: stop a participant's screen share (its screen publications are muted)."""

    TYPE: ClassVar[str] = "stop_screen_share"
    participant_id: str = ""

    def validate(self) -> None:
        check_str("participant_id", self.participant_id, max_len=64)


@dataclass(frozen=True, slots=True)
class EndMeeting(ClientMessage):
    """Host: end the meeting for everyone."""

    TYPE: ClassVar[str] = "end_meeting"


@dataclass(frozen=True, slots=True)
class SetRecording(ClientMessage):
    """Host: start (``active`` true) or stop recording the meeting."""

    TYPE: ClassVar[str] = "set_recording"
    active: bool = True

    def validate(self) -> None:
        if not isinstance(self.active, bool):
            raise ProtocolError(ErrorCode.INVALID_FIELD, "active: expected boolean")


HOST_MESSAGES = (
    Admit,
    AdmitAll,
    Refuse,
    SetGuestPolicy,
    MuteAll,
    UnlockMedia,
    RemoveParticipant,
    LockRoom,
    EndMeeting,
    SetRecording,
    StopScreenShare,
)
