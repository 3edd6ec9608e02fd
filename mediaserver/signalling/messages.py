"""Signalling protocol v1: one typed definition per message (see docs/protocol.md).

Client messages are parsed strictly: unknown types, unknown fields, missing fields and
wrong types are :class:`ProtocolError` with a code and a message naming the field.
Server messages are plain dicts; ``error`` builds the error message.

The messages are defined in ``participant_messages`` and ``host_messages`` (on
``message_base``), the error codes in ``protocol_errors``; this module is the protocol's
surface: the registry of client messages, and decoding and parsing a frame.
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

from .host_messages import (
    HOST_MESSAGES,
    Admit,
    AdmitAll,
    EndMeeting,
    LockRoom,
    MuteAll,
    Refuse,
    RemoveParticipant,
    SetGuestPolicy,
    SetRecording,
    StopScreenShare,
    UnlockMedia,
)
from .message_base import ClientMessage
from .participant_messages import (
    MAX_ANSWER_SDP_CHARS,
    MAX_NAME_CHARS,
    MAX_ROOM_CHARS,
    MAX_SDP_CHARS,
    SOURCES,
    Hello,
    IceCandidate,
    Join,
    Leave,
    Mute,
    Pin,
    Ping,
    Publish,
    RestartSubscriber,
    SubscribeAnswer,
    VideoSize,
)
from .protocol_errors import ErrorCode, ProtocolError, error

__all__ = [
    "CLIENT_MESSAGES",
    "HOST_MESSAGES",
    "MAX_ANSWER_SDP_CHARS",
    "MAX_NAME_CHARS",
    "MAX_ROOM_CHARS",
    "MAX_SDP_CHARS",
    "PROTOCOL_VERSION",
    "SOURCES",
    "Admit",
    "AdmitAll",
    "ClientMessage",
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
