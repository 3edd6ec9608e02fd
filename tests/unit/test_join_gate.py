"""Joins first (sfu/turns.py JoinGate): subscriber offers wait while someone joins."""

from __future__ import annotations

import asyncio

from mediaserver.sfu.turns import JoinGate


async def test_quiet_returns_at_once_when_nobody_joins():
    gate = JoinGate()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await gate.quiet(5.0)
    assert loop.time() - t0 < 1.0
    assert gate.in_progress == 0


async def test_quiet_waits_until_every_join_finished():
    gate = JoinGate()
    gate.started("a")
    gate.started("b")
    waiter = asyncio.ensure_future(gate.quiet(30.0))
    await asyncio.sleep(0.01)
    gate.finished("a")
    await asyncio.sleep(0.01)
    assert not waiter.done() and gate.joining("b") and not gate.joining("a")
    gate.finished("b")
    await asyncio.wait_for(waiter, 5.0)
    gate.finished("b")  # twice: harmless
    assert gate.in_progress == 0


async def test_a_join_counts_for_at_most_its_hold():
    gate = JoinGate()
    gate.started("receive-only", hold=0.05)
    assert gate.joining("receive-only")
    await asyncio.wait_for(gate.quiet(30.0), 5.0)  # released by the hold, not max_wait
    assert not gate.joining("receive-only")


async def test_quiet_is_bounded_by_max_wait():
    gate = JoinGate()
    gate.started("slow", hold=60.0)
    await asyncio.wait_for(gate.quiet(0.05), 5.0)
    assert gate.joining("slow")  # still joining: the offer went ahead anyway
    gate.close()
    assert gate.in_progress == 0
    await asyncio.wait_for(gate.quiet(30.0), 5.0)


async def test_started_again_restarts_the_hold():
    gate = JoinGate()
    gate.started("a", hold=0.05)
    gate.started("a", hold=60.0)
    await asyncio.sleep(0.1)
    assert gate.joining("a")
    gate.close()
