"""ICE completes when its check succeeds, not at aioice's next 20 ms pacing tick
(mediaserver/sfu/ice_pacing.py), on real aioice connections over loopback."""

from __future__ import annotations

import asyncio
import time

import aioice.ice
import pytest
from ice_pair import introduce

from mediaserver.sfu import ice_pacing, peer  # noqa: F401  (peer installs the patch)


async def _pair() -> tuple[aioice.ice.Connection, aioice.ice.Connection]:
    a = aioice.ice.Connection(ice_controlling=True, components=1, use_ipv6=False)
    b = aioice.ice.Connection(ice_controlling=False, components=1, use_ipv6=False)
    await introduce(a, b)
    return a, b


async def test_real_connections_complete_without_waiting_for_the_pacing_tick():
    before = ice_pacing.status()["ice_pacing_ended_early"]
    a, b = await _pair()
    try:
        async with asyncio.timeout(10):
            await asyncio.gather(a.connect(), b.connect())
        # media flows both ways over the nominated pair
        await a.send(b"ping")
        assert await asyncio.wait_for(b.recv(), 5) == b"ping"
        await b.send(b"pong")
        assert await asyncio.wait_for(a.recv(), 5) == b"pong"
        # each side's pacing sleep was ended by its check list's outcome
        assert ice_pacing.status()["ice_pacing_ended_early"] >= before + 2
    finally:
        await a.close()
        await b.close()


class _Connecting:
    def __init__(self) -> None:
        self._check_list_state = ice_pacing._SignallingQueue()


async def test_the_pacing_sleep_ends_when_the_check_list_has_an_outcome():
    conn = _Connecting()
    token = ice_pacing._CONNECTING.set((conn._check_list_state, asyncio.current_task()))
    try:
        asyncio.get_running_loop().call_later(0.01, conn._check_list_state.put_nowait, 1)
        async with asyncio.timeout(5):  # not the 30 s asked for
            await ice_pacing._sleep(30.0)
        assert conn._check_list_state.get_nowait() == 1  # the outcome is still there
    finally:
        ice_pacing._CONNECTING.reset(token)


@pytest.mark.parametrize("connecting", [True, False])
async def test_without_an_outcome_the_pacing_is_kept(connecting: bool):
    conn = _Connecting()
    token = ice_pacing._CONNECTING.set(
        (conn._check_list_state, asyncio.current_task()) if connecting else None
    )
    try:
        started = time.monotonic()
        await ice_pacing._sleep(0.05)
        assert time.monotonic() - started >= 0.049  # the whole interval between checks
    finally:
        ice_pacing._CONNECTING.reset(token)


async def test_tasks_started_by_connect_sleep_in_full_after_the_outcome():
    """connect() starts the consent checks' task (which inherits its context): once the
    check list is complete its sleeps must still last (a bug once made them spin)."""
    conn = _Connecting()
    conn._check_list_state.put_nowait(1)  # completed
    token = ice_pacing._CONNECTING.set((conn._check_list_state, asyncio.current_task()))
    try:

        async def consent() -> float:
            started = time.monotonic()
            await ice_pacing._sleep(0.05)
            return time.monotonic() - started

        assert await asyncio.create_task(consent()) >= 0.049
    finally:
        ice_pacing._CONNECTING.reset(token)


def test_aioice_sees_the_paced_sleep_and_the_rest_of_asyncio():
    assert aioice.ice.asyncio.sleep is ice_pacing._sleep
    assert aioice.ice.asyncio.Queue is asyncio.Queue
    assert aioice.ice.asyncio.create_task is asyncio.create_task
