"""Taking turns for the heavy negotiation steps of a room (issue 13: joins).

Every arrival makes every other subscriber renegotiate. Started all at once, those
offers are ready together, and asyncio runs every ready one in each loop turn before
it reads the sockets again: a newcomer's ICE checks and DTLS flights waited behind
all of them (~20-40 ms each in a room of 15). Taken in turn, one offer (or applied
answer) runs per loop turn and the packets in between are read after at most one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

__all__ = ["in_turn"]

T = TypeVar("T")
P = ParamSpec("P")


async def in_turn(
    turn: asyncio.Lock, work: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
) -> T:
    """``await work(*args, **kwargs)`` holding ``turn`` (a room's ``negotiation_turn``);
    the coroutine is created only once the turn is taken (a cancelled wait leaves none)."""
    async with turn:
        return await work(*args, **kwargs)
