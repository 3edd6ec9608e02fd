"""Signalling protocol v1: the base of every client message and the string check
their ``validate`` methods share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .protocol_errors import ErrorCode, ProtocolError

__all__ = ["ClientMessage", "check_str"]


def check_str(name: str, value: Any, *, max_len: int, allow_empty: bool = False) -> str:
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
