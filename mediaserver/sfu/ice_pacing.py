"""ICE that completes when its check does, not at aioice's next pacing tick (issue 13).

aioice's ``Connection.connect`` starts one connectivity check per 20 ms (the Ta timer of
RFC 8445 §6.1.4.2) in a loop ``start a check; sleep 20 ms``, and only reads the check
list's outcome once a pass of that loop finds nothing left to start. With one candidate
pair, the usual case here (one host candidate each side, or the UDP mux), the check
succeeds within a millisecond on a LAN but ``connect`` returns 20 ms later, and aiortc
starts DTLS only then: every connection of the server (browsers' too, the server being
either ICE side) and of the SDK paid 20 ms of its time to media for nothing.

Installed once (:func:`install`, from :mod:`.peer`), for the server and the SDK alike:
while a connection runs ``connect``, a sleep of aioice's ICE module ends early when the
connection's check list changes state (completed or failed). The checks' pacing is kept:
a check list still running sleeps the whole interval between two checks.

Every private aioice name used here is in :data:`PRIVATE_NAMES` (canary test).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import types
from typing import Any

import aioice.ice

__all__ = ["PRIVATE_NAMES", "install", "status"]

#: (object, attribute) pairs relied on here; the canary test checks each exists.
PRIVATE_NAMES: tuple[tuple[str, str], ...] = (
    ("aioice.ice", "asyncio"),
    ("aioice.ice.Connection()", "_check_list_state"),
    ("aioice.ice.Connection source", "await asyncio.sleep(0.02)"),
    ("aioice.ice.Connection source", "await self._check_list_state.get()"),
    ("aioice.ice.Connection source", "self._check_list_state.put_nowait("),
)

#: (the connection's outcome queue, the task running its connect()): tasks that
#: connect() creates (consent checks) inherit the variable, so the task is what tells
#: connect's own sleeps apart
_CONNECTING: contextvars.ContextVar[tuple[_SignallingQueue, asyncio.Task[Any] | None] | None] = (
    contextvars.ContextVar("ice_connecting", default=None)
)
#: [pacing sleeps ended early by the check list's outcome]
_counts = [0]
_installed = False


class _SignallingQueue(asyncio.Queue[int]):
    """A check list's outcome queue that also wakes the pacing sleep when written."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def put_nowait(self, item: int) -> None:
        super().put_nowait(item)
        self.changed.set()


async def _sleep(delay: float, result: Any = None) -> Any:
    """``asyncio.sleep`` for aioice's ICE module: in ``connect`` itself (not in the tasks
    it starts, e.g. consent checks), it ends as soon as the check list has an outcome."""
    connecting = _CONNECTING.get()
    if connecting is None or connecting[1] is not asyncio.current_task() or delay <= 0:
        return await asyncio.sleep(delay, result)
    changed = connecting[0].changed
    if not changed.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await changed.wait()
                _counts[0] += 1
    return result


def status() -> dict[str, int]:
    """For tests: how many pacing sleeps the check list's outcome has ended early."""
    return {"ice_pacing_ended_early": _counts[0]}


def install() -> None:
    """Patch aioice's ICE module (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    original_connect = aioice.ice.Connection.connect
    # aioice's ICE module sees this namespace as ``asyncio``: the module, but sleep
    paced = types.SimpleNamespace(**vars(asyncio))
    paced.sleep = _sleep

    async def connect(self: aioice.ice.Connection) -> None:
        queue = self._check_list_state
        if not isinstance(queue, _SignallingQueue):
            signalling = _SignallingQueue()
            while not queue.empty():
                signalling.put_nowait(queue.get_nowait())
            self._check_list_state = queue = signalling
        token = _CONNECTING.set((queue, asyncio.current_task()))
        try:
            await original_connect(self)
        finally:
            _CONNECTING.reset(token)

    setattr(aioice.ice, "asyncio", paced)  # noqa: B010
    setattr(aioice.ice.Connection, "connect", connect)  # noqa: B010
