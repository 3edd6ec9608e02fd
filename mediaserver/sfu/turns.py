"""Taking turns for the heavy negotiation steps of a room (issue 13: joins).

Every arrival makes every other subscriber renegotiate. Started all at once, those
offers are ready together, and asyncio runs every ready one in each loop turn before
it reads the sockets again: a newcomer's ICE checks and DTLS flights waited behind
all of them (~20-40 ms each in a room of 15). Taken in turn, one offer (or applied
answer) runs per loop turn and the packets in between are read after at most one.

:class:`JoinGate`: joins first. While someone is joining (from ``join`` until their
publisher connection is up, at most :data:`JOIN_HOLD_SECONDS`), the others' new
subscriber offers wait (at most :data:`OFFER_WAIT_SECONDS` each): the newcomer's
media cannot flow before its connection is up anyway, so the others lose nothing,
and the newcomer's ICE and DTLS run on an idle loop. Offers that waited are made
once for every arrival meanwhile (a renegotiation reads the room when it runs).
The newcomer's own offers (what it receives) do not wait.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

__all__ = ["JOIN_HOLD_SECONDS", "OFFER_WAIT_SECONDS", "JoinGate", "in_turn"]

#: A join counts as in progress for at most this long (e.g. receive-only: no publisher).
JOIN_HOLD_SECONDS = 1.0
#: The longest a subscriber offer waits for joins in progress to finish.
OFFER_WAIT_SECONDS = 0.5

T = TypeVar("T")
P = ParamSpec("P")


async def in_turn(
    turn: asyncio.Lock, work: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
) -> T:
    """``await work(*args, **kwargs)`` holding ``turn`` (a room's ``negotiation_turn``);
    the coroutine is created only once the turn is taken (a cancelled wait leaves none)."""
    async with turn:
        return await work(*args, **kwargs)


class JoinGate:
    """Who in a room is joining now; subscriber offers wait for :meth:`quiet`."""

    def __init__(self) -> None:
        self._joining: dict[str, asyncio.TimerHandle] = {}
        self._quiet = asyncio.Event()
        self._quiet.set()

    def started(self, key: str, hold: float = JOIN_HOLD_SECONDS) -> None:
        """``key`` is joining; it counts as joining for at most ``hold`` seconds."""
        old = self._joining.pop(key, None)
        if old is not None:
            old.cancel()
        self._joining[key] = asyncio.get_running_loop().call_later(hold, self.finished, key)
        self._quiet.clear()

    def finished(self, key: str) -> None:
        """``key``'s join is over (connected, gone, or held long enough)."""
        handle = self._joining.pop(key, None)
        if handle is not None:
            handle.cancel()
        if not self._joining:
            self._quiet.set()

    def joining(self, key: str) -> bool:
        return key in self._joining

    @property
    def in_progress(self) -> int:
        return len(self._joining)

    async def quiet(self, max_wait: float = OFFER_WAIT_SECONDS) -> None:
        """Return when nobody is joining, or after ``max_wait`` seconds."""
        if self._quiet.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max_wait):
                await self._quiet.wait()

    def close(self) -> None:
        for handle in self._joining.values():
            handle.cancel()
        self._joining.clear()
        self._quiet.set()
