"""The direct receive path (issue 13): SRTP in, forwarded out, in one synchronous call.

Without it an inbound packet waits in aioice's queue for aiortc's DTLS transport task
(``RTCDtlsTransport.__run`` → ``_recv_next``: unprotect, then our replaced
``_handle_rtp_data`` coroutine). With it, once a server connection's DTLS handshake is
done (state ``connected``, ``_rx_srtp`` set), its ICE agent
(:class:`~.ice_sockets.ServerConnection`) gets a receive function and the socket's
protocol calls it with every SRTP/SRTCP datagram, inside the event loop's read callback:

- publisher connections (:func:`publisher_receive`): RTP is unprotected
  (:func:`~.fastpath.new_rx_session`), routed by SSRC and handed to the publication's
  synchronous handler (``Publication.on_rtp``, which forwards natively); SRTCP is
  unprotected and goes to the synchronous RTCP handler;
- subscriber connections (:func:`subscriber_receive`): only SRTCP (feedback) is
  expected; RTP is dropped without being unprotected (aiortc would discard it).

STUN, DTLS and SRTP arriving before the handshake keep aiortc's path, and so does
everything when the connection is not a :class:`~.ice_sockets.ServerConnection`.
An exception in a handler is logged, never raised into the event loop's transport
(uvloop would close the shared media socket).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from typing import Any

from . import fastpath
from .ice_sockets import DirectReceive, ServerConnection

__all__ = [
    "DirectReceive",
    "RtcpHandler",
    "RtpHandler",
    "attach",
    "publisher_receive",
    "status",
    "subscriber_receive",
]

RtpHandler = Callable[[bytes, float], None]
RtcpHandler = Callable[[bytes], None]

_log = logging.getLogger(__name__)
_ssrc_at = struct.Struct("!I").unpack_from
#: [RTP packets, RTCP packets, handler errors] taken by the direct path in this process
_counts = [0, 0, 0]
_bound: set[int] = set()  # id() of the ICE connections with a receive function


def status() -> dict[str, object]:
    """For ``/healthz``: the direct receive path's counters."""
    return {
        "direct_receive": "on",
        "direct_receive_connections": len(_bound),
        "direct_rtp_packets": _counts[0],
        "direct_rtcp_packets": _counts[1],
        "direct_receive_errors": _counts[2],
    }


def _failed() -> None:
    _counts[2] += 1
    n = _counts[2]
    if n & (n - 1) == 0:  # the 1st, 2nd, 4th, 8th ... error
        _log.exception("direct receive: handler failed (%d so far)", n)


def attach(dtls: Any, make: Callable[[fastpath.RxSession], DirectReceive]) -> None:
    """Bind ``make(rx session)`` to ``dtls``'s ICE connection while ``dtls`` is
    connected (aiortc's ``RTCDtlsTransport``; its state changes are followed)."""

    def on_state() -> None:
        connection = getattr(dtls.transport, "_connection", None)
        if not isinstance(connection, ServerConnection):
            return
        srtp = getattr(dtls, "_rx_srtp", None)
        if dtls.state == "connected" and srtp is not None:
            connection.direct_rx = make(fastpath.new_rx_session(srtp))
            _bound.add(id(connection))
        else:
            connection.direct_rx = None
            _bound.discard(id(connection))

    dtls.on("statechange", on_state)
    on_state()


def _is_rtcp(data: bytes) -> bool:
    return len(data) > 1 and 191 < data[1] < 209  # as aiortc's is_rtcp (RFC 5761)


def publisher_receive(
    rx: fastpath.RxSession,
    routes: dict[int, RtpHandler],
    on_unknown: Callable[[bytes], RtpHandler | None],
    on_rtcp: RtcpHandler,
    clock: Callable[[], float],
) -> DirectReceive:
    """The receive function of a publisher connection (``routes``: SSRC → handler, kept
    up to date by the participant; ``on_unknown``: binds an SSRC the offer did not
    announce, e.g. a simulcast layer)."""
    unprotect = rx.rtp
    unprotect_rtcp = rx.rtcp
    counts = _counts

    def receive(data: bytes) -> None:
        try:
            if len(data) > 1 and 191 < data[1] < 209:  # _is_rtcp, inlined
                clear = unprotect_rtcp(data)
                if clear is not None:
                    counts[1] += 1
                    on_rtcp(clear)
                return
            clear = unprotect(data)
            if clear is None:
                return
            counts[0] += 1
            if len(clear) < 12:
                return
            route = routes.get(_ssrc_at(clear, 8)[0])
            if route is None:
                route = on_unknown(clear)
                if route is None:
                    return
            route(clear, clock())
        except Exception:
            _failed()

    return receive


def subscriber_receive(rx: fastpath.RxSession, on_rtcp: RtcpHandler) -> DirectReceive:
    """The receive function of a subscriber connection: its RTCP feedback."""
    unprotect_rtcp = rx.rtcp
    counts = _counts

    def receive(data: bytes) -> None:
        if not _is_rtcp(data):
            return  # RTP toward a send-only connection
        try:
            clear = unprotect_rtcp(data)
            if clear is not None:
                counts[1] += 1
                on_rtcp(clear)
        except Exception:
            _failed()

    return receive
