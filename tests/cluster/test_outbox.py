"""The relay's outbox: ordered, repeated until heard, and a clear end when nobody listens."""

from __future__ import annotations

import asyncio

from mediaserver.cluster.cluster import Unavailable
from mediaserver.cluster.outbox import Outbox


class FakeRedis:
    """PUBLISH answers scripted: ``"down"`` raises, ``0`` nobody listened, ``1`` heard."""

    def __init__(self, answers: list[object]) -> None:
        self.answers = answers
        self.heard: list[dict] = []

    async def publish(self, node: str, message: dict) -> int:
        answer = self.answers.pop(0) if self.answers else 1
        if answer == "down":
            raise Unavailable("connection refused")
        if answer:
            self.heard.append(message)
        return int(answer)  # type: ignore[call-overload]


async def wait_until(predicate, timeout: float = 10.0) -> None:
    """Poll ``predicate`` (the outbox has no event to wait on) until a generous deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)


async def test_messages_arrive_in_order_across_an_outage_and_a_resubscription():
    redis = FakeRedis(["down", "down", 0, 0, 1, "down", 0, 1])
    gone: list[str] = []

    async def on_gone(node: str) -> None:
        gone.append(node)

    box = Outbox(redis.publish, on_gone, give_up=30.0)
    for i in range(5):
        box.put("node-b", {"n": i})
    await wait_until(lambda: len(redis.heard) == 5)
    assert [m["n"] for m in redis.heard] == [0, 1, 2, 3, 4]
    assert gone == []
    await box.close()


async def test_a_node_that_never_listens_is_given_up_once():
    redis = FakeRedis([0] * 10_000)
    gone: list[str] = []

    async def on_gone(node: str) -> None:
        gone.append(node)

    box = Outbox(redis.publish, on_gone, give_up=0.3)
    box.put("node-b", {"n": 1})
    box.put("node-b", {"n": 2})
    await wait_until(lambda: gone == ["node-b"])
    assert redis.heard == [] and "node-b" not in box.queues
    await box.close()


async def test_an_endless_outage_gives_up_when_the_queue_is_full():
    redis = FakeRedis(["down"] * 10_000)
    gone: list[str] = []

    async def on_gone(node: str) -> None:
        gone.append(node)

    box = Outbox(redis.publish, on_gone, give_up=0.1, max_queued=3)
    for i in range(3):
        box.put("node-b", {"n": i})
    await asyncio.sleep(0.3)
    assert gone == []  # Redis away: waiting is right, the messages are kept
    box.put("node-b", {"n": 3})
    await wait_until(lambda: gone == ["node-b"])
    await box.close()
