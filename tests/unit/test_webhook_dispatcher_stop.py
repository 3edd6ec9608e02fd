"""The webhook dispatcher stops when asked, also when it is woken at the same moment.

Python 3.11's ``asyncio.wait_for`` returns the inner result instead of raising when
the waiting task is cancelled in the same loop iteration as the inner awaitable
finishes (CPython gh-86296, fixed in 3.12): a dispatcher waiting for a wake-up with
``wait_for`` and woken just as ``stop()`` cancelled it kept running, and ``stop()``
(the server's cleanup, a test's teardown) waited for it forever."""

from __future__ import annotations

import asyncio

from linkapi.webhooks import WebhookDispatcher
from mediaserver.state import SqliteStore


async def test_stop_while_being_woken_returns() -> None:
    store = SqliteStore(":memory:")
    await store.open()
    dispatcher = WebhookDispatcher(store, timeout=1.0, retry_base=0.1, retry_max=1.0)
    dispatcher.poll_interval = 3600.0  # only a wake-up or stop() ends its wait
    passes = 0
    idle = asyncio.Event()

    async def should_run() -> bool:
        nonlocal passes
        passes += 1
        idle.set()
        return False

    dispatcher.should_run = should_run
    try:
        await dispatcher.start()
        await idle.wait()
        for _ in range(5):  # into its wait for a wake-up
            await asyncio.sleep(0)
        dispatcher.wake()  # a delivery or a new event wakes it ...
        stopping = asyncio.ensure_future(dispatcher.stop())  # ... as the server stops
        done, _ = await asyncio.wait({stopping}, timeout=30)
        assert done, "stop() did not return: the dispatcher swallowed its cancellation"
        assert dispatcher._task is not None and dispatcher._task.done()
        after_stop = passes
        for _ in range(5):
            await asyncio.sleep(0)
        assert passes == after_stop  # no pass after stop()
    finally:
        await store.close()
