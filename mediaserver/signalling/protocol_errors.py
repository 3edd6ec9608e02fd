"""Signalling protocol v1: the error codes, the exception a malformed or refused
client message raises, and the ``error`` message the server answers with."""

from __future__ import annotations

from typing import Any

__all__ = ["ErrorCode", "ProtocolError", "error"]


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


def error(code: str, message: str, ref: str | int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if ref is not None:
        out["ref"] = ref
    return out
