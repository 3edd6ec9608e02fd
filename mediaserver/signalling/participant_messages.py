"""Signalling protocol v1: the messages of every participant (hello, join, media,
video size, pins); the host's are in ``host_messages``."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any, ClassVar

from ..lobby.keys import MAX_KEY_CHARS
from .message_base import ClientMessage, check_str
from .protocol_errors import ErrorCode, ProtocolError

__all__ = [
    "MAX_ANSWER_SDP_CHARS",
    "MAX_NAME_CHARS",
    "MAX_ROOM_CHARS",
    "MAX_SDP_CHARS",
    "SOURCES",
    "Hello",
    "IceCandidate",
    "Join",
    "Leave",
    "Mute",
    "Pin",
    "Ping",
    "Publish",
    "RestartSubscriber",
    "SubscribeAnswer",
    "VideoSize",
]

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


@dataclass(frozen=True, slots=True)
class Hello(ClientMessage):
    """First message on every connection: ``{"type": "hello", "version": 1}``."""

    TYPE: ClassVar[str] = "hello"
    version: int = 0
    client: str = ""

    def validate(self) -> None:
        if not isinstance(self.version, int) or isinstance(self.version, bool):
            raise ProtocolError(ErrorCode.INVALID_FIELD, "version: expected integer")
        check_str("client", self.client, max_len=128, allow_empty=True)


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
            key = check_str("key", self.key, max_len=MAX_KEY_CHARS)
            if not all(c.isascii() and (c.isalnum() or c in "-_.") for c in key):
                raise ProtocolError(ErrorCode.INVALID_FIELD, "key: not a participant key")
        if (self.room is None) == (self.link is None):
            raise ProtocolError(ErrorCode.MISSING_FIELD, "give exactly one of 'room' or 'link'")
        if self.room is not None:
            room = check_str("room", self.room, max_len=MAX_ROOM_CHARS)
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
                check_str("token", self.token, max_len=2048)
        else:
            link = check_str("link", self.link, max_len=64)
            if not all(c.isascii() and (c.isalnum() or c in "-_") for c in link):
                raise ProtocolError(ErrorCode.INVALID_FIELD, "link: not a link slug")
            if self.token is not None:
                check_str("token", self.token, max_len=2048)
            if self.invite is not None:
                check_str("invite", self.invite, max_len=64)
            if self.token is not None and self.invite is not None:
                raise ProtocolError(ErrorCode.INVALID_FIELD, "give 'token' or 'invite', not both")
        if self.name is not None:
            name = check_str("name", self.name, max_len=MAX_NAME_CHARS)
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
        check_str("sdp", self.sdp, max_len=MAX_SDP_CHARS)
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
        check_str("sdp", self.sdp, max_len=MAX_ANSWER_SDP_CHARS)
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
        check_str("publication_id", self.publication_id, max_len=64)
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
        check_str("publication_id", self.publication_id, max_len=64)
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
        check_str("participant_id", self.participant_id, max_len=64)
        if not isinstance(self.pinned, bool):
            raise ProtocolError(ErrorCode.INVALID_FIELD, "pinned: expected boolean")
