"""Shared pieces of the SFU's ownership tree: ids and refusals."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["JoinRefused", "Refused", "SendMessage", "new_id"]

SendMessage = Callable[[dict[str, Any]], Awaitable[None]]


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(9)}"


class Refused(Exception):
    """A request the server will not carry out; ``code`` is the protocol error code."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details  # extra fields of the error reply (e.g. opens_at)


class JoinRefused(Refused):
    pass
