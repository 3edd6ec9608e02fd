"""Sender reports of one subscriber connection: one timer for the connection, not one
aiortc task per forwarded track.

aiortc runs an RTCP loop per ``RTCRtpSender`` (wake up every 0.5-1.5 s, build an SR and
an SDES object, SRTCP-protect them, send them through its coroutine chain). A
subscriber in a room of 25 has 48 senders, so the server sent 1 200 such datagrams a
second for SRs whose content the SFU replaces anyway (from the publisher's clock), and
at small rooms the loops were the largest part of the server's idle CPU.
:func:`take_over` replaces each sender's loop with a registration here;
:meth:`SenderReports.tick` (driven by the room's tick) sends every report of the
connection at once, as compound packets of up to :data:`REPORTS_PER_DATAGRAM` SRs and
their CNAMEs (SDES, RFC 3550 §6.1), on the synchronous send path.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

from . import rtcp

__all__ = ["PRIVATE_NAMES", "REPORTS_PER_DATAGRAM", "SenderReports", "take_over"]

#: SRs per compound datagram: 12 x (28 B SR + 48 B SDES for a 36-character CNAME) = ~900 B.
REPORTS_PER_DATAGRAM = 12

#: aiortc names :func:`take_over` relies on (checked by the canary test).
PRIVATE_NAMES: tuple[tuple[str, str], ...] = (
    ("aiortc.rtcrtpsender.RTCRtpSender", "_run_rtcp"),
    ("aiortc.rtcrtpsender.RTCRtpSender source", "self.__rtcp_started"),
    ("aiortc.rtcrtpsender.RTCRtpSender source", "self.__rtcp_exited"),
    ("aiortc.rtcrtpsender.RTCRtpSender source", "self.__cname"),
    ("aiortc.rtcrtpsender.RTCRtpSender source", "self.__rtcp_task = asyncio.ensure_future"),
)

Report = Callable[[Any], "bytes | None"]


class SenderReports:
    """The senders of one connection that report, and when the next reports are due."""

    def __init__(self, send: Callable[[bytes], bool], rand: Callable[[], float] = random.random):
        self._send = send
        self._rand = rand
        self._senders: dict[Any, Report] = {}
        self.due = 0.0

    def __len__(self) -> int:
        return len(self._senders)

    def add(self, sender: Any, report: Report) -> None:
        self._senders[sender] = report

    def remove(self, sender: Any) -> None:
        self._senders.pop(sender, None)

    def tick(self, now: float) -> int:
        """Send the reports if due (every 0.5-1.5 s, RFC 3550 §6.3.1's randomisation,
        so that connections do not report in step); returns the datagrams sent."""
        if now < self.due or not self._senders:
            return 0
        self.due = now + 0.5 + self._rand()
        return self.send_now()

    def send_now(self) -> int:
        datagrams = compound_reports(
            [
                (sr, getattr(sender, "_RTCRtpSender__cname", None))
                for sender, report in list(self._senders.items())
                if (sr := report(sender)) is not None
            ]
        )
        return sum(1 for data in datagrams if self._send(data))

    def send_bye(self, ssrc: int) -> None:
        self._send(rtcp.build_bye([ssrc]))


def compound_reports(reports: list[tuple[bytes, str | None]]) -> list[bytes]:
    """Compound RTCP packets: each starts with up to :data:`REPORTS_PER_DATAGRAM` SRs,
    followed by the CNAME of each of their SSRCs (if known), one SDES each."""
    out = []
    for i in range(0, len(reports), REPORTS_PER_DATAGRAM):
        group = reports[i : i + REPORTS_PER_DATAGRAM]
        # one single-chunk SDES per SSRC, not one SDES with many chunks: aiortc's parser
        # (our SDK's, the bots') misreads chunk padding and would drop the whole datagram
        sdes = b"".join(rtcp.build_sdes_cname(_sr_ssrc(sr), cname) for sr, cname in group if cname)
        out.append(b"".join(sr for sr, _ in group) + sdes)
    return out


def _sr_ssrc(sr: bytes) -> int:
    return int.from_bytes(sr[4:8], "big")


def take_over(sender: Any, reports: SenderReports, report: Report) -> None:
    """Replace ``sender``'s RTCP loop (started by aiortc in ``send``) with a registration
    in ``reports``; ``stop`` cancels it as before, and a BYE is sent as aiortc would."""

    async def run_rtcp() -> None:
        sender._RTCRtpSender__rtcp_started.set()
        reports.add(sender, report)
        try:
            await asyncio.Event().wait()  # until RTCRtpSender.stop cancels the task
        except asyncio.CancelledError:
            pass
        finally:
            reports.remove(sender)
        reports.send_bye(sender._ssrc)
        sender._RTCRtpSender__rtcp_exited.set()

    setattr(sender, "_run_rtcp", run_rtcp)  # noqa: B010
