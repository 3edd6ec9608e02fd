"""Pure abuse limits: token buckets, message limiter, address caps, work gate, SDP bounds,
log throttle."""

from __future__ import annotations

import asyncio

import pytest

from mediaserver.limits import (
    AddressLimit,
    AddressRate,
    Busy,
    MessageLimiter,
    TokenBucket,
    WorkGate,
)
from mediaserver.logthrottle import LogThrottle
from mediaserver.sfu.sdp_limits import SdpError, SdpLimits, check_sdp_bounds


def test_token_bucket_burst_then_refill() -> None:
    b = TokenBucket(rate=2.0, burst=3)
    assert [b.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert b.retry_after() == pytest.approx(0.5)
    assert b.take(0.5) and not b.take(0.5)
    assert b.take(10.0) and b.tokens == pytest.approx(2.0)  # capped at burst


def test_message_limiter_limits_then_closes_and_recovers() -> None:
    lim = MessageLimiter(rate=1.0, burst=2, close_after=3)
    assert [lim.check(0.0) for _ in range(4)] == ["ok", "ok", "limited", "limited"]
    assert lim.check(1.0) == "ok"  # an accepted message resets the strike count
    assert [lim.check(1.0) for _ in range(3)] == ["limited", "limited", "close"]


def test_join_rate_per_address() -> None:
    rate = AddressRate(rate=1.0, burst=2, max_addresses=3)
    assert rate.take("a", 0.0) == 0.0 and rate.take("a", 0.0) == 0.0
    assert rate.take("a", 0.0) == pytest.approx(1.0)  # empty: a token in 1 s
    assert rate.take("b", 0.0) == 0.0  # other addresses have their own bucket
    assert rate.take("a", 1.0) == 0.0  # refilled
    rate.take("c", 1.0)
    rate.take("d", 10.0)  # the table is full: refilled buckets are forgotten first
    assert len(rate.buckets) <= 3 and "d" in rate.buckets
    assert AddressRate(rate=1.0, burst=0).take("a", 0.0) == 0.0  # 0: off


def test_address_limit() -> None:
    lim = AddressLimit(2)
    assert lim.acquire("a") and lim.acquire("a") and not lim.acquire("a")
    assert lim.acquire("b")
    lim.release("a")
    assert lim.acquire("a")
    for _ in range(3):
        lim.release("a")
    assert "a" not in lim.open
    assert all(AddressLimit(0).acquire("x") for _ in range(1000))


async def test_work_gate_refuses_beyond_queue_and_waits_when_told() -> None:
    gate = WorkGate(concurrent=1, queued=1)
    release = asyncio.Event()

    async def hold() -> None:
        async with gate.slot():
            await release.wait()

    first = asyncio.ensure_future(hold())
    second = asyncio.ensure_future(hold())
    await asyncio.sleep(0)
    assert gate.active == 1 and gate.waiting == 1
    with pytest.raises(Busy):
        async with gate.slot():
            pass
    third = asyncio.ensure_future(hold_waiting(gate, release))
    await asyncio.sleep(0)
    assert gate.waiting == 2
    release.set()
    await asyncio.gather(first, second, third)
    assert gate.active == 0 and gate.waiting == 0


async def hold_waiting(gate: WorkGate, release: asyncio.Event) -> None:
    async with gate.slot(wait=True):
        await release.wait()


HEAD = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"


def _sdp(*mids: str, attrs: int = 1) -> str:
    body = "".join(
        f"m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:{mid}\r\n" + "a=x\r\n" * (attrs - 1)
        for mid in mids
    )
    return HEAD + body


def test_sdp_bounds_accept_normal_sdp() -> None:
    assert check_sdp_bounds(_sdp("0", "1"), SdpLimits()) == 2


def test_sdp_bounds_answer_to_a_large_offer() -> None:
    """A full room of 25 (24 audio + video publishers): our offer has 48 m-lines and
    aiortc's answer is ~69 KB; both above the client-offer limits (32 m-lines, 60 KB)."""
    answer = _sdp(*map(str, range(48)), attrs=250)
    assert len(answer) > SdpLimits().max_bytes
    assert check_sdp_bounds(answer, SdpLimits(), expected_mlines=48) == 48
    with pytest.raises(SdpError, match="exceeds 60000"):
        check_sdp_bounds(answer, SdpLimits())  # the same text as an offer: refused


@pytest.mark.parametrize(
    ("sdp", "limits", "expected", "message"),
    [
        ("", SdpLimits(), None, "non-empty"),
        (123, SdpLimits(), None, "non-empty"),
        ("x=1\r\n", SdpLimits(), None, "start with 'v=0'"),
        (_sdp("0") + "a=" + "x" * 100, SdpLimits(max_bytes=100), None, "exceeds 100"),
        (_sdp(*map(str, range(33))), SdpLimits(), None, "more than 32 m-lines"),
        (_sdp("0", attrs=9), SdpLimits(max_attributes_per_mline=8), None, "m-line 0 has more"),
        (HEAD + "a=x\r\n" * 9, SdpLimits(max_attributes_per_mline=8), None, "session section"),
        (_sdp("a", "b", "a"), SdpLimits(), None, "duplicate a=mid 'a' (m-lines 0 and 2)"),
        (_sdp("a") + "a=mid:b\r\n", SdpLimits(), None, "more than one a=mid"),
        (_sdp("0", "1"), SdpLimits(), 3, "answer has 2 m-lines, the offer has 3"),
        ("v=0\n" + "m=audio 9 X 0\na=inactive\n" * 40, SdpLimits(), None, "more than 32"),
        # an answer is bounded by our offer, not by the client-offer limits
        (_sdp(*map(str, range(49))), SdpLimits(), 48, "more than 48 m-lines"),
        (_sdp("0", "1") + "a=" + "x" * 9000, SdpLimits(max_bytes=100), 2, "exceeds 8192"),
    ],
)
def test_sdp_bounds_refuse_precisely(
    sdp: object, limits: SdpLimits, expected: int | None, message: str
) -> None:
    with pytest.raises(SdpError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_sdp_bounds(sdp, limits, expected_mlines=expected)


class _Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, object]]] = []

    def warning(self, event: str, **kw: object) -> None:
        self.lines.append(("warning", event, kw))

    def exception(self, event: str, **kw: object) -> None:
        self.lines.append(("exception", event, kw))


def test_log_throttle_limits_each_event_and_reports_suppressed() -> None:
    now = [0.0]
    log = _Log()
    t = LogThrottle(log, burst=2, interval=10.0, clock=lambda: now[0])
    for _ in range(5):
        t.warning("early candidate", target="publisher")
    t.exception("other event")
    assert [e for _, e, _ in log.lines] == ["early candidate"] * 2 + ["other event"]
    now[0] = 10.0
    t.warning("early candidate")
    assert log.lines[-1] == ("warning", "early candidate", {"suppressed": 3})
    t.warning("early candidate")
    assert log.lines[-1][2] == {}
