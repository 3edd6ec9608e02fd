"""Signalling protocol v1: one typed definition per message (see docs/protocol.md).

Client messages are parsed strictly: unknown types, unknown fields, missing fields and
wrong types are :class:`ProtocolError` with a code and a message naming the field.
Server messages are plain dicts built by the helpers at the bottom.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from ..lobby.keys import MAX_KEY_CHARS

__all__ = [
    "CLIENT_MESSAGES",
    "HOST_MESSAGES",
    "PROTOCOL_VERSION",
    "Admit",
    "AdmitAll",
    "EndMeeting",
    "ErrorCode",
    "Hello",
    "IceCandidate",
    "Join",
    "Leave",
    "LockRoom",
    "Mute",
    "MuteAll",
    "Pin",
    "Ping",
    "ProtocolError",
    "Publish",
    "Refuse",
    "RemoveParticipant",
    "RestartSubscriber",
    "SetGuestPolicy",
    "SetRecording",
    "StopScreenShare",
    "SubscribeAnswer",
    "UnlockMedia",
    "VideoSize",
    "decode",
    "error",
    "parse",
    "valid_ref",
]

PROTOCOL_VERSION = 1
MAX_NAME_CHARS = 64
MAX_ROOM_CHARS = 128
MAX_SDP_CHARS = 60_000
#: A subscribe answer grows with the room (it answers our offer, which has two m-lines
#: per audio + video publisher); its real bound is the offer's (sdp_limits) and
#: signalling.max_message_bytes. This is the largest allowed max_message_bytes.
MAX_ANSWER_SDP_CHARS = 1_048_576
#: What a publication carries (``publish.sources``); kind decides the default.
SOURCES = ("camera", "microphone", "screen")
#: Bidirectional overrides/isolates: they can make a display name render misleadingly.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class ErrorCode:
    """Error codes sent in ``{"type": "error", "code": ...}``."""

    BAD_JSON = "bad_json"
    BAD_MESSAGE = "bad_message"
    UNKNOWN_TYPE = "unknown_type"
    MISSING_FIELD = "missing_field"
    UNKNOWN_FIELD = "unknown_field"
    INVALID_FIELD = "invalid_field"
    MESSAGE_TOO_LARGE = "message_too_large"
    UNSUPPORTED_VERSION = "unsupported_version"
    HELLO_REQUIRED = "hello_required"
    NOT_JOINED = "not_joined"
    ALREADY_JOINED = "already_joined"
    INVALID_SDP = "invalid_sdp"
    BAD_STATE = "bad_state"
    NOT_FOUND = "not_found"
    ROOM_FULL = "room_full"
    TOO_MANY_PUBLICATIONS = "too_many_publications"
    TOO_MANY_PINS = "too_many_pins"
    JOIN_TIMEOUT = "join_timeout"
    NOT_ADMITTED = "not_admitted"
    FORBIDDEN = "forbidden"
    LOCKED_BY_HOST = "locked_by_host"
    SHUTTING_DOWN = "shutting_down"
    # joins by room id (ad-hoc rooms, docs/protocol.md §4)
    ADHOC_DISABLED = "adhoc_disabled"
    TOKEN_REQUIRED = "token_required"
    INVALID_TOKEN = "invalid_token"
    TOKEN_EXPIRED = "token_expired"
    RATE_LIMITED = "rate_limited"
    BUSY = "busy"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    INTERNAL = "internal_error"


class ProtocolError(Exception):
    def __init__(self, code: str, message: str, ref: str | int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref


def _check_str(name: str, value: Any, *, max_len: int, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"{name}: expected string")
    if not allow_empty and not value.strip():
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"{name}: must not be empty")
    if len(value) > max_len:
        raise ProtocolError(ErrorCode.INVALID_FIELD, f"{name}: longer than {max_len} characters")
    return value


@dataclass(frozen=True, slots=True)
class ClientMessage:
    TYPE: ClassVar[str] = ""
    id: str | int | None = None

    def validate(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Hello(ClientMessage):
    """First message on every connection: ``{"type": "hello", "version": 1}``."""

    TYPE: ClassVar[str] = "hello"
    version: int = 0
    client: str = ""

    def validate(self) -> None:
        if not isinstance(self.version, int) or isinstance(self.version, bool):
            raise ProtocolError(ErrorCode.INVALID_FIELD, "version: expected integer")
        _check_str("client", self.client, max_len=128, allow_empty=True)


@dataclass(frozen=True, slots=True)
class Join(ClientMessage):
    """Join an ad-hoc room by id (``room``, with a room ``token``) or through a meeting
    link (``link``: the slug of a join or host URL, plus an optional join ``token`` or
    guest ``invite``). A missing room token is not a format error: the server answers
    ``adhoc_disabled`` or ``token_required`` (docs/protocol.md §4)."""

    TYPE: ClassVar[str] = "join"
    room: str | None = None
    link: str | None = None
    token: str | None = None
    invite: str | None = None
    name: str | None = None
    #: The participant key of an earlier ``joined`` or ``lobby`` of this meeting.
    key: str | None = None

    def validate(self) -> None:
        if self.key is not None:
            key = _check_str("key", self.key, max_len=MAX_KEY_CHARS)
            if not all(c.isascii() and (c.isalnum() or c in "-_.") for c in key):
                raise ProtocolError(ErrorCode.INVALID_FIELD, "key: not a participant key")
        if (self.room is None) == (self.link is None):
            raise ProtocolError(ErrorCode.MISSING_FIELD, "give exactly one of 'room' or 'link'")
        if self.room is not None:
            room = _check_str("room", self.room, max_len=MAX_ROOM_CHARS)
            if not all(c.isascii() and (c.isalnum() or c in "-_.") for c in room):
                raise ProtocolError(
                    ErrorCode.INVALID_FIELD, "room: only ASCII letters, digits, '-', '_' and '.'"
                )
            if room.startswith("lnk_"):
                raise ProtocolError(
                    ErrorCode.INVALID_FIELD, "room: meeting-link rooms are joined with 'link'"
                )
            if self.invite is not None:
                raise ProtocolError(ErrorCode.INVALID_FIELD, "invite: only with 'link'")
            if self.token is not None:
                _check_str("token", self.token, max_len=2048)
        else:
            link = _check_str("link", self.link, max_len=64)
            if not all(c.isascii() and (c.isalnum() or c in "-_") for c in link):
                raise ProtocolError(ErrorCode.INVALID_FIELD, "link: not a link slug")
            if self.token is not None:
                _check_str("token", self.token, max_len=2048)
            if self.invite is not None:
                _check_str("invite", self.invite, max_len=64)
            if self.token is not None and self.invite is not None:
                raise ProtocolError(ErrorCode.INVALID_FIELD, "give 'token' or 'invite', not both")
        if self.name is not None:
            name = _check_str("name", self.name, max_len=MAX_NAME_CHARS)
            if any(unicodedata.category(c) == "Cc" or c in _BIDI_CONTROLS for c in name):
                raise ProtocolError(
                    ErrorCode.INVALID_FIELD, "name: control characters are not allowed"
                )


@dataclass(frozen=True, slots=True)
class Publish(ClientMessage):
    """An SDP offer for the publisher connection."""

    TYPE: ClassVar[str] = "publish"
    sdp: str = ""
    restart: bool = False  # a fresh publisher connection replaces the current one
    #: mid -> "camera" | "microphone" | "screen" (absent mids: by kind)
    sources: dict[str, str] | None = None

    def validate(self) -> None:
        _check_str("sdp", self.sdp, max_len=MAX_SDP_CHARS)
        if not isinstance(self.restart, bool):
            raise ProtocolError(ErrorCode.INVALID_FIELD, "restart: expected boolean")
        if self.sources is None:
            return
        if not isinstance(self.sources, dict) or len(self.sources) > 32:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD, "sources: expected an object of at most 32 mids"
            )
        for mid, source in self.sources.items():
            if len(mid) > 32 or source not in SOURCES:
                raise ProtocolError(
                    ErrorCode.INVALID_FIELD,
                    "sources: each value must be 'camera', 'microphone' or 'screen'",
                )


@dataclass(frozen=True, slots=True)
class SubscribeAnswer(ClientMessage):
    """The SDP answer to the server's latest ``subscribe_offer``."""

    TYPE: ClassVar[str] = "subscribe_answer"
    sdp: str = ""
    revision: int = 0

    def validate(self) -> None:
        _check_str("sdp", self.sdp, max_len=MAX_ANSWER_SDP_CHARS)
        if not isinstance(self.revision, int) or isinstance(self.revision, bool):
            raise ProtocolError(ErrorCode.INVALID_FIELD, "revision: expected integer")


@dataclass(frozen=True, slots=True)
class IceCandidate(ClientMessage):
    """A trickled ICE candidate (``candidate`` null means end of candidates)."""

    TYPE: ClassVar[str] = "ice_candidate"
    target: str = ""
    candidate: dict[str, Any] | None = None

    def validate(self) -> None:
        if self.target not in ("publisher", "subscriber"):
            raise ProtocolError(
                ErrorCode.INVALID_FIELD, "target: expected 'publisher' or 'subscriber'"
            )
        if self.candidate is None:
            return
        if not isinstance(self.candidate, dict):
            raise ProtocolError(ErrorCode.INVALID_FIELD, "candidate: expected object or null")
        cand = self.candidate.get("candidate")
        if not isinstance(cand, str) or len(cand) > 1024:
            raise ProtocolError(ErrorCode.INVALID_FIELD, "candidate.candidate: expected string")
        mid = self.candidate.get("sdpMid")
        if mid is not None and not isinstance(mid, str):
            raise ProtocolError(ErrorCode.INVALID_FIELD, "candidate.sdpMid: expected string")
        idx = self.candidate.get("sdpMLineIndex")
        if idx is not None and (not isinstance(idx, int) or isinstance(idx, bool) or idx < 0):
            raise ProtocolError(
                ErrorCode.INVALID_FIELD, "candidate.sdpMLineIndex: expected integer >= 0"
            )


@dataclass(frozen=True, slots=True)
class Mute(ClientMessage):
    """Mute or unmute one of the sender's own publications."""

    TYPE: ClassVar[str] = "mute"
    publication_id: str = ""
    muted: bool = True

    def validate(self) -> None:
        _check_str("publication_id", self.publication_id, max_len=64)
        if not isinstance(self.muted, bool):
            raise ProtocolError(ErrorCode.INVALID_FIELD, "muted: expected boolean")


@dataclass(frozen=True, slots=True)
class Leave(ClientMessage):
    TYPE: ClassVar[str] = "leave"


@dataclass(frozen=True, slots=True)
class Ping(ClientMessage):
    TYPE: ClassVar[str] = "ping"


@dataclass(frozen=True, slots=True)
class RestartSubscriber(ClientMessage):
    """Media recovery: drop the subscriber connection and offer a fresh one."""

    TYPE: ClassVar[str] = "restart_subscriber"


@dataclass(frozen=True, slots=True)
class VideoSize(ClientMessage):
    """The size (device pixels) a subscriber renders another participant's video at;
    0 x 0: not visible (the server stops forwarding it). Picks the simulcast layer."""

    TYPE: ClassVar[str] = "video_size"
    publication_id: str = ""
    width: int = 0
    height: int = 0

    def validate(self) -> None:
        _check_str("publication_id", self.publication_id, max_len=64)
        for name in ("width", "height"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 16384:
                raise ProtocolError(ErrorCode.INVALID_FIELD, f"{name}: expected integer 0..16384")


@dataclass(frozen=True, slots=True)
class Pin(ClientMessage):
    """Pin (``pinned`` true) or unpin a participant: its camera video reaches you even
    outside your last-N (``rooms.last_n``). Answered with ``pins``."""

    TYPE: ClassVar[str] = "pin"
    participant_id: str = ""
    pinned: bool = True

    def validate(self) -> None:
        _check_str("participant_id", self.participant_id, max_len=64)
        if not isinstance(self.pinned, bool):
            raise ProtocolError(ErrorCode.INVALID_FIELD, "pinned: expected boolean")


@dataclass(frozen=True, slots=True)
class Admit(ClientMessage):
    """Host: let one waiting guest in."""

    TYPE: ClassVar[str] = "admit"
    knock_id: str = ""

    def validate(self) -> None:
        _check_str("knock_id", self.knock_id, max_len=64)


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
        _check_str("knock_id", self.knock_id, max_len=64)
        _check_str("message", self.message, max_len=500, allow_empty=True)


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
        _check_str("participant_id", self.participant_id, max_len=64)


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
        _check_str("participant_id", self.participant_id, max_len=64)


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


CLIENT_MESSAGES: dict[str, type[ClientMessage]] = {
    cls.TYPE: cls
    for cls in (
        Hello,
        Join,
        Publish,
        SubscribeAnswer,
        IceCandidate,
        Mute,
        Leave,
        Ping,
        RestartSubscriber,
        VideoSize,
        Pin,
        *HOST_MESSAGES,
    )
}
_REQUIRED: dict[str, frozenset[str]] = {
    "hello": frozenset({"version"}),
    "join": frozenset(),
    "publish": frozenset({"sdp"}),
    "subscribe_answer": frozenset({"sdp"}),
    "ice_candidate": frozenset({"target", "candidate"}),
    "mute": frozenset({"publication_id", "muted"}),
    "leave": frozenset(),
    "ping": frozenset(),
    "restart_subscriber": frozenset(),
    "admit": frozenset({"knock_id"}),
    "admit_all": frozenset(),
    "refuse": frozenset({"knock_id"}),
    "set_guest_policy": frozenset({"policy"}),
    "mute_all": frozenset({"kind"}),
    "unlock_media": frozenset({"kind"}),
    "remove_participant": frozenset({"participant_id"}),
    "lock_room": frozenset({"locked"}),
    "end_meeting": frozenset(),
    "set_recording": frozenset({"active"}),
    "video_size": frozenset({"publication_id", "width", "height"}),
    "pin": frozenset({"participant_id", "pinned"}),
    "stop_screen_share": frozenset({"participant_id"}),
}


def valid_ref(ref: object) -> str | int | None:
    """``ref`` if it is a valid request id (echoed in replies), else None."""
    if isinstance(ref, str) and len(ref) <= 64:
        return ref
    if isinstance(ref, int) and not isinstance(ref, bool):
        return ref
    return None


def decode(raw: str | bytes) -> dict[str, Any]:
    """Decode one frame to a JSON object, or raise :class:`ProtocolError`."""
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(ErrorCode.BAD_JSON, f"invalid JSON: {exc}") from None
    except RecursionError:
        raise ProtocolError(ErrorCode.BAD_JSON, "invalid JSON: nested too deeply") from None
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "a message must be a JSON object")
    return obj


def parse(obj: dict[str, Any]) -> ClientMessage:
    """Turn a decoded JSON object into a validated client message."""
    ref = obj.get("id")
    if ref is not None and not (
        (isinstance(ref, str) and len(ref) <= 64)
        or (isinstance(ref, int) and not isinstance(ref, bool))
    ):
        raise ProtocolError(ErrorCode.INVALID_FIELD, "id: expected string (<= 64) or integer")
    mtype = obj.get("type")
    if not isinstance(mtype, str):
        raise ProtocolError(ErrorCode.MISSING_FIELD, "type: required string", ref)
    cls = CLIENT_MESSAGES.get(mtype)
    if cls is None:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {mtype[:40]!r}", ref)
    allowed = {f.name for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in obj.items():
        if key == "type":
            continue
        if key not in allowed:
            raise ProtocolError(
                ErrorCode.UNKNOWN_FIELD, f"{mtype}: unknown field {key[:40]!r}", ref
            )
        kwargs[key] = value
    missing = sorted(_REQUIRED[mtype] - kwargs.keys())
    if missing:
        raise ProtocolError(ErrorCode.MISSING_FIELD, f"{mtype}: missing field {missing[0]!r}", ref)
    msg = cls(**kwargs)
    try:
        msg.validate()
    except ProtocolError as exc:
        exc.message = f"{mtype}: {exc.message}"
        exc.ref = ref
        raise
    return msg


def error(code: str, message: str, ref: str | int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if ref is not None:
        out["ref"] = ref
    return out
