"""Sender reports of a subscriber connection: one timer, compound datagrams."""

from __future__ import annotations

import asyncio

from aiortc.rtp import RtcpPacket, RtcpSdesPacket, RtcpSrPacket

from mediaserver.sfu import rtcp
from mediaserver.sfu.sender_reports import REPORTS_PER_DATAGRAM, SenderReports, take_over


class _Sender:
    """What take_over and the reports read of an aiortc RTCRtpSender."""

    def __init__(self, ssrc: int, cname: str | None = "cname-1") -> None:
        self._ssrc = ssrc
        self._RTCRtpSender__cname = cname
        self._RTCRtpSender__rtcp_started = asyncio.Event()
        self._RTCRtpSender__rtcp_exited = asyncio.Event()


def _sr(sender: _Sender) -> bytes:
    return rtcp.build_sr(sender._ssrc, 1 << 40, 90_000, 10, 1_000)


def test_reports_go_out_together_in_compound_datagrams_with_their_cnames():
    sent: list[bytes] = []
    reports = SenderReports(lambda data: sent.append(data) or True, rand=lambda: 0.5)
    senders = [_Sender(1000 + i) for i in range(REPORTS_PER_DATAGRAM + 3)]
    for s in senders:
        reports.add(s, _sr)
    reports.add(_Sender(7, None), lambda s: None)  # nothing sent yet: no report
    assert reports.tick(10.0) == 2
    assert len(sent) == 2
    first = RtcpPacket.parse(sent[0])  # as a peer's stack reads it
    assert all(isinstance(p, RtcpSrPacket) for p in first[:REPORTS_PER_DATAGRAM])
    assert [p.ssrc for p in first[:REPORTS_PER_DATAGRAM]] == [s._ssrc for s in senders[:12]]
    sdes = first[REPORTS_PER_DATAGRAM:]
    assert all(isinstance(p, RtcpSdesPacket) for p in sdes)
    assert [(c.ssrc, c.items) for p in sdes for c in p.chunks] == [
        (s._ssrc, [(1, b"cname-1")]) for s in senders[:12]
    ]
    second = RtcpPacket.parse(sent[1])
    assert [p.ssrc for p in second[:3]] == [s._ssrc for s in senders[12:]]
    assert [c.ssrc for p in second[3:] for c in p.chunks] == [s._ssrc for s in senders[12:]]
    assert all(len(d) < 1000 for d in sent)
    # not due again before the randomised interval (0.5 + 0.5 s here)
    assert reports.tick(10.9) == 0
    assert reports.tick(11.0) == 2


def test_sdes_round_trips_for_every_padding_and_unknown_cname_sends_the_sr_alone():
    for name in ("a", "ab", "abc", "abcd", "0123456789abcdef0123456789abcdef0123"):
        sdes = rtcp.build_sdes_cname(9, name)
        assert len(sdes) % 4 == 0
        (parsed,) = RtcpPacket.parse(sdes + sdes)[:1]
        assert isinstance(parsed, RtcpSdesPacket)
        assert [(c.ssrc, c.items) for c in parsed.chunks] == [(9, [(1, name.encode())])]
    sent: list[bytes] = []
    reports = SenderReports(lambda data: sent.append(data) or True)
    reports.add(_Sender(5, None), _sr)
    reports.send_now()
    assert sent == [_sr(_Sender(5))]


async def test_take_over_replaces_the_rtcp_loop_and_sends_a_bye_when_stopped():
    sent: list[bytes] = []
    reports = SenderReports(lambda data: sent.append(data) or True)
    sender = _Sender(42)
    take_over(sender, reports, _sr)
    task = asyncio.ensure_future(sender._run_rtcp())  # as RTCRtpSender.send does
    await asyncio.sleep(0)
    assert sender._RTCRtpSender__rtcp_started.is_set()
    assert len(reports) == 1
    task.cancel()  # as RTCRtpSender.stop does
    await task
    assert sender._RTCRtpSender__rtcp_exited.is_set()
    assert len(reports) == 0
    assert sent == [rtcp.build_bye([42])]
