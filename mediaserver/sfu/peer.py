"""The only module that touches aiortc's peer connections (and its private names), with
its two helpers: :mod:`.ice_sockets` (the server's ICE sockets) and :mod:`.rxpath` (the
direct receive path).

Every private aiortc/aioice attribute used here or there is listed in
:data:`AIORTC_PRIVATE_NAMES` and checked by the canary test, so an aiortc upgrade that
renames one fails loudly.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcconfiguration import RTCBundlePolicy, RTCIceTransportPolicy
from aiortc.rtcdtlstransport import RTCDtlsTransport

from . import aiortc_speedups, fastpath, ice_pacing, rxpath, srtp_tx
from .aiortc_speedups import (
    SectionCache,
    captured_parse,
    own_descriptions,
    preparsed,
    reused_sections,
)
from .ice_sockets import (
    configure_ice_addresses,
    configure_port_range,
    configure_udp_mux,
    is_server_side,
    server_side,
)
from .negotiation import (
    MAX_SDP_BYTES,
    NegotiatedTrack,
    SdpError,
    checked_tracks,
    parse_sdp,
    same_codec,
)
from .rxpath import RtcpHandler, RtpHandler
from .sdp_limits import ANSWER_BYTES_PER_MLINE
from .sender_reports import PRIVATE_NAMES as _SENDER_REPORT_NAMES
from .sender_reports import SenderReports, take_over

__all__ = [
    "AIORTC_PRIVATE_NAMES",
    "IDLE_RECEIVER_STATE",
    "IdleTrack",
    "PublisherPeer",
    "RtcpHandler",
    "RtpHandler",
    "SubscriberPeer",
    "configure_announced_addresses",
    "configure_ice_addresses",
    "configure_port_range",
    "configure_udp_mux",
    "make_configuration",
]

#: (object, attribute) pairs the SFU relies on; the canary test checks each exists.
AIORTC_PRIVATE_NAMES: tuple[tuple[str, str], ...] = (
    ("aiortc.rtcdtlstransport.RTCDtlsTransport", "_handle_rtp_data"),
    ("aiortc.rtcdtlstransport.RTCDtlsTransport", "_handle_rtcp_data"),
    ("aiortc.rtcdtlstransport.RTCDtlsTransport", "_send_rtp"),
    ("aiortc.rtcrtpsender.RTCRtpSender()", "_ssrc"),
    ("aiortc.rtcrtpsender.RTCRtpSender()", "_rtx_ssrc"),
    ("aiortc.rtcrtpsender.RTCRtpSender()", "_stream_id"),
    ("aioice.ice", "get_host_addresses"),
    ("aiortc.rtcicetransport", "Connection"),
    ("aioice.ice.Connection", "get_component_candidates"),
    ("aioice.ice.Connection()", "stun_server"),
    ("aioice.ice.Connection()", "_protocols"),
    ("aioice.ice", "StunProtocol"),
    ("aioice.ice", "server_reflexive_candidate"),
    ("aioice.ice", "candidate_foundation"),
    ("aioice.ice", "candidate_priority"),
    # publisher receivers' RTCP loops replaced (_quiet_receiver_rtcp)
    ("aiortc.rtcrtpreceiver.RTCRtpReceiver", "_run_rtcp"),
    (
        "aiortc.rtcrtpreceiver.RTCRtpReceiver source",
        "self.__rtcp_task = asyncio.ensure_future(self._run_rtcp())",
    ),
    # passive ICE consent on the server (ServerConnection.query_consent / check_incoming)
    ("aioice.ice.Connection", "query_consent"),
    ("aioice.ice.Connection", "check_incoming"),
    ("aioice.ice.Connection source", "self._query_consent_task"),
    # ICE checks on an established pair answered without aioice (ice_sockets.answer_check)
    ("aioice.ice.Connection source", "self._closing"),
    ("aioice.ice.Connection source", "self.remote_username"),
    # fast send path (SubscriberPeer.send_rtp_now)
    ("aiortc.rtcdtlstransport.RTCDtlsTransport source", "_tx_srtp"),
    ("aiortc.rtcicetransport.RTCIceTransport()", "_connection"),
    ("aioice.ice.Connection()", "_nominated"),
    ("aioice.ice.CandidatePair source", "self.protocol"),
    ("aioice.ice.CandidatePair", "remote_addr"),
    # one UDP port for all media (_ServerConnection, _MuxProtocol)
    ("aioice.ice.StunProtocol", "request"),
    ("aioice.ice.StunProtocol", "close"),
    ("aioice.ice.StunProtocol", "connection_made"),
    ("aioice.ice.StunProtocol", "datagram_received"),
    ("aioice.ice.StunProtocol source", "self.receiver"),
    ("aioice.ice.StunProtocol source", "self.transactions"),
    ("aioice.ice.Connection", "data_received"),
    ("aioice.ice.Connection", "local_password"),
    ("aioice.ice.Connection", "local_username"),
    ("aioice.ice.Connection", "close"),
    ("aioice.ice.Connection source", "local_username: str | None = None"),
    # direct receive path (rxpath.py, ice_sockets.py)
    ("aiortc.rtcdtlstransport.RTCDtlsTransport source", "self._rx_srtp"),
    ("aiortc.rtcdtlstransport.RTCDtlsTransport source", 'self.emit("statechange")'),
    ("aioice.ice.Connection source", "self._queue.put_nowait((data, component))"),
    ("aiortc.rtcicetransport.RTCIceGatherer source", "local_username=local_username"),
    # idle receivers of sendonly server transceivers (_slim_idle_receiver)
    ("aiortc.rtcrtpreceiver.RTCRtpReceiver source", "self.__started = False"),
    ("aiortc.rtcrtpreceiver.RTCRtpReceiver source", "self.__jitter_buffer"),
    ("aiortc.rtcrtpreceiver.RTCRtpReceiver source", "self.__nack_generator"),
    ("aiortc.rtcrtpreceiver.RTCRtpReceiver source", "self.__decoder_queue"),
    ("aiortc.rtcrtpreceiver.RTCRtpReceiver source", "self.__decoder_error"),
    ("aiortc.rtcrtpreceiver.RTCRtpReceiver source", "self.__rtcp_exited"),
    ("aiortc.rtcrtpreceiver.RTCRtpReceiver source", "self.__rtcp_started"),
    ("aiortc.rtcrtpreceiver.RTCRtpReceiver source", "self.__timestamp_mapper"),
    # one RTCP timer per subscriber connection (sender_reports.take_over)
    *_SENDER_REPORT_NAMES,
    # native SRTP for AES-GCM connections (srtp_tx.tx_key_of)
    *srtp_tx.PRIVATE_NAMES,
)

#: What an aiortc ``RTCRtpReceiver`` builds for receiving (jitter buffer, NACK
#: generator, the decoder thread's queue and error event, the RTCP task's events, the
#: timestamp mapper) and uses only once started (``receive``) or for packets routed to
#: it: ~8 KB a receiver, and a room of 25 has 1 200 of them that never start (the
#: receiver side of every sendonly subscriber transceiver). Mangled private names.
IDLE_RECEIVER_STATE: tuple[str, ...] = (
    "_RTCRtpReceiver__jitter_buffer",
    "_RTCRtpReceiver__nack_generator",
    "_RTCRtpReceiver__decoder_queue",
    "_RTCRtpReceiver__decoder_error",
    "_RTCRtpReceiver__rtcp_exited",
    "_RTCRtpReceiver__rtcp_started",
    "_RTCRtpReceiver__timestamp_mapper",
)


def _slim_idle_receiver(receiver: Any) -> None:
    """Drop the receiving state of the receiver of a sendonly transceiver: aiortc starts
    a receiver only for a recvonly/sendrecv direction, and the SFU replaces the DTLS
    transport's packet handlers, so none of it is ever touched (``stop`` and
    ``getStats`` of a receiver never started do not read it)."""
    if getattr(receiver, "_RTCRtpReceiver__started", True):
        return  # started: keep everything
    for name in IDLE_RECEIVER_STATE:
        setattr(receiver, name, None)


def _quiet_receiver_rtcp(receiver: Any) -> None:
    """Replace the RTCP loop a publisher connection's receiver starts in ``receive``: it
    wakes every 0.5-1.5 s to send receiver reports on the streams aiortc received, and
    aiortc receives none (inbound RTP is routed past it; the participant sends our own
    reports), so it only woke the server, once a second per published track. ``stop``
    cancels the replacement as it cancelled the loop."""
    if getattr(receiver, "_mediaserver_quiet", False):
        return

    async def run_rtcp() -> None:
        receiver._RTCRtpReceiver__rtcp_started.set()
        try:
            await asyncio.Event().wait()  # until RTCRtpReceiver.stop cancels the task
        except asyncio.CancelledError:
            pass
        receiver._RTCRtpReceiver__rtcp_exited.set()

    setattr(receiver, "_run_rtcp", run_rtcp)  # noqa: B010
    setattr(receiver, "_mediaserver_quiet", True)  # noqa: B010


_ssrc_at = struct.Struct("!I")


def _not_early_candidate(record: logging.LogRecord) -> bool:
    """aiortc warns on every candidate added before the remote description, once per
    client message: Participant.add_ice_candidate logs that itself, rate limited."""
    return not str(record.msg).startswith("RTCPeerConnection addIceCandidate called without")


logging.getLogger("aiortc.rtcpeerconnection").addFilter(_not_early_candidate)


_announced_map: dict[str, str] = {}


def configure_announced_addresses(mapping: Mapping[str, str]) -> None:
    """Per local address announced addresses (``rtc.announced_addresses``), process-wide."""
    _announced_map.clear()
    _announced_map.update(mapping)


aiortc_speedups.install(is_server_side)
ice_pacing.install()


def make_configuration(
    ice_servers: Sequence[dict[str, Any]] = (), transport_policy: str = "all"
) -> RTCConfiguration:
    """A max-bundle configuration with only the given ICE servers (none by default);
    ``transport_policy="relay"``: relayed (TURN) candidates only.

    aiortc falls back to a public STUN server when ``iceServers`` is None: never do that.
    """
    servers = [
        RTCIceServer(
            urls=list(s["urls"]),
            username=s.get("username") or None,
            credential=s.get("credential") or None,
        )
        for s in ice_servers
    ]
    return RTCConfiguration(
        iceServers=servers,
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
        iceTransportPolicy=RTCIceTransportPolicy(transport_policy),
    )


class IdleTrack(MediaStreamTrack):
    """A track whose ``recv`` never returns: the sender waits, never encodes."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._never: asyncio.Future[None] = asyncio.get_event_loop().create_future()

    async def recv(self) -> Any:
        await asyncio.shield(self._never)
        raise RuntimeError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        super().stop()


async def _noop_rtp(data: bytes, arrival_time_ms: int) -> None:
    return None


def _queued_rtcp(handler: RtcpHandler) -> Callable[[bytes], Any]:
    """aiortc awaits ``_handle_rtcp_data``: the synchronous handler, as a coroutine
    (for the SRTCP that still arrives through aiortc's queue)."""

    async def handle_rtcp_data(data: bytes) -> None:
        handler(data)

    return handle_rtcp_data


class _PeerBase:
    def __init__(self, ice_servers: Sequence[dict[str, Any]], announced_address: str) -> None:
        self.pc = RTCPeerConnection(configuration=make_configuration(ice_servers))
        self._announced = announced_address
        self._dtls: RTCDtlsTransport | None = None
        self._fast: tuple[srtp_tx.TxSrtp, Callable[..., None], Any] | None = None
        #: what this connection's packets are protected with (see srtp_tx)
        self._tx_srtp: srtp_tx.TxSrtp | None = None
        #: Where the native forwarding path sends this connection's packets (None in
        #: the pure-Python path); bound whenever the Python send path resolves.
        self.native_target = fastpath.new_target()
        self.closed = False
        self.connected = asyncio.Event()
        self.failed = asyncio.Event()

        @self.pc.on("connectionstatechange")
        def _on_state() -> None:
            state = self.pc.connectionState
            if state == "connected":
                self.connected.set()
            elif state in ("failed", "closed"):
                self.failed.set()

    @property
    def connection_state(self) -> str:
        return str(self.pc.connectionState)

    def _local_sdp(self, text: str | None = None) -> str:
        """The local description (``text``: it, serialised already) as announced."""
        from .negotiation import apply_announced_address

        if text is None:
            desc = self.pc.localDescription
            assert desc is not None
            text = desc.sdp
        return apply_announced_address(text, self._announced, _announced_map)

    def _hook(self) -> None:
        raise NotImplementedError

    async def _set_remote(self, sdp: str, sdp_type: str, parsed: Any) -> None:
        """setRemoteDescription of ``sdp`` (``parsed`` already: aiortc does not parse it
        again); aiortc's errors become :class:`SdpError`."""
        try:
            with server_side(), preparsed(sdp, parsed):
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=sdp_type))
        except Exception as exc:
            raise SdpError(f"{sdp_type} rejected: {type(exc).__name__}: {exc}") from None
        self._hook()

    def send_rtp_now(self, data: bytes) -> bool:
        """Send one clear RTP packet synchronously: SRTP protect + UDP sendto, without
        aiortc's chain of coroutines (the hot path). False if not connected."""
        return self._send_now(data, rtcp=False)

    def send_rtcp_now(self, data: bytes) -> bool:
        """Send clear RTCP synchronously (SRTCP protect + sendto on the selected pair),
        e.g. a NACK from the receive path. False if not connected."""
        return self._send_now(data, rtcp=True)

    def _send_now(self, data: bytes, *, rtcp: bool) -> bool:
        fast = self._fast
        if fast is None:
            fast = self._fast = self._resolve_fast()
            if fast is None:
                return False
        srtp, sendto, addr = fast
        try:
            sendto(srtp.protect_rtcp(data) if rtcp else srtp.protect_rtp(data), addr)
        except Exception:
            self._fast = None  # re-resolve next time (e.g. a new selected pair)
            if self.native_target is not None:
                self.native_target.clear()
            return False
        return True

    def _resolve_fast(self) -> tuple[Any, Callable[..., None], Any] | None:
        dtls = self._dtls
        if dtls is None or dtls.state != "connected":
            return None
        pair = dtls.transport._connection._nominated.get(1)
        srtp = getattr(dtls, "_tx_srtp", None)
        if pair is None or srtp is None or pair.protocol.transport is None:
            return None
        tx = self._tx_srtp
        if tx is None or tx.shared is not srtp:  # once per DTLS session: RTP keeps one state
            target = self.native_target
            native = fastpath.NATIVE_SRTP and srtp_tx.native_rtp(target, dtls)
            tx = self._tx_srtp = srtp_tx.TxSrtp(srtp, target if native else None)
        fastpath.bind_target(self.native_target, srtp, pair.protocol.transport, pair.remote_addr)
        return tx, pair.protocol.transport.sendto, pair.remote_addr

    def refresh_fast_path(self) -> None:
        """Resolve the send path again (the selected ICE pair may have changed)."""
        if self.native_target is not None:
            self.native_target.clear()
        self._fast = self._resolve_fast()

    async def send_rtp(self, data: bytes) -> bool:
        """Send clear RTP or RTCP bytes (SRTP applied here). False if not connected."""
        dtls = self._dtls
        if dtls is None:
            return False
        try:
            await dtls._send_rtp(data)
        except ConnectionError:
            return False
        return True

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.native_target is not None:
            self.native_target.clear()
        await self.pc.close()


class PublisherPeer(_PeerBase):
    """The connection a participant publishes on: RTP in, RTCP feedback out.

    Inbound RTP never reaches aiortc's jitter buffer or decoder: once DTLS is connected
    it takes the direct receive path (:mod:`.rxpath`: unprotect, route by SSRC, the
    synchronous handler); what still arrives through aiortc's queue goes to the
    replaced ``_handle_rtp_data``, the same router.
    """

    def __init__(
        self,
        ice_servers: Sequence[dict[str, Any]],
        announced_address: str,
        on_rtcp: RtcpHandler,
        on_unknown_rtp: Callable[[bytes], RtpHandler | None],
    ) -> None:
        super().__init__(ice_servers, announced_address)
        self.native_target = None  # nothing is forwarded on it: RTCP only, from Python
        self.routes: dict[int, RtpHandler] = {}
        self._on_rtcp = on_rtcp
        self._on_unknown_rtp = on_unknown_rtp
        self._loop = asyncio.get_event_loop()

    async def answer(self, offer_sdp: str) -> tuple[str, list[NegotiatedTrack]]:
        """Apply a client offer; return our answer and the negotiated tracks.

        Raises :class:`SdpError` if the offer is unusable; the connection is unchanged
        in that case when it was the first offer.
        """
        offer = parse_sdp(offer_sdp, "offer")
        await self._set_remote(offer_sdp, "offer", offer)
        await asyncio.sleep(0)  # let media flow between the heavy steps
        try:
            with captured_parse() as parsed, own_descriptions():  # answer + candidates
                await self.pc.setLocalDescription(await self.pc.createAnswer())
        except Exception as exc:  # e.g. no codec in common
            raise SdpError(f"offer cannot be answered: {type(exc).__name__}: {exc}") from None
        answer_sdp = self._local_sdp()
        return answer_sdp, checked_tracks(
            parsed[0] if parsed else parse_sdp(answer_sdp, "answer"), offer
        )

    def _hook(self) -> None:
        for t in self.pc.getTransceivers():
            _quiet_receiver_rtcp(t.receiver)
            dtls = t.receiver.transport
            if dtls is not None and not getattr(dtls, "_mediaserver_hooked", False):
                setattr(dtls, "_handle_rtp_data", self._handle_rtp_data)  # noqa: B010
                setattr(dtls, "_handle_rtcp_data", _queued_rtcp(self._on_rtcp))  # noqa: B010
                setattr(dtls, "_mediaserver_hooked", True)  # noqa: B010
                self._dtls = dtls
                rxpath.attach(dtls, self._direct_receive)

    def _direct_receive(self, rx: fastpath.RxSession) -> rxpath.DirectReceive:
        return rxpath.publisher_receive(
            rx, self.routes, self._on_unknown_rtp, self._on_rtcp, self._loop.time
        )

    async def _handle_rtp_data(self, data: bytes, arrival_time_ms: int) -> None:
        """aiortc's queue path (packets before the direct path was bound)."""
        if len(data) < 12:
            return
        route = self.routes.get(_ssrc_at.unpack_from(data, 8)[0])
        if route is None:
            route = self._on_unknown_rtp(data)
            if route is None:
                return
        route(data, self._loop.time())


class SubscriberPeer(_PeerBase):
    """The connection a participant receives on: the server offers, RTP out.

    One ``sendonly`` transceiver per forwarded track, each with an :class:`IdleTrack`
    so aiortc never encodes; the SFU writes packets straight to the DTLS transport.
    """

    def __init__(
        self,
        ice_servers: Sequence[dict[str, Any]],
        announced_address: str,
        on_rtcp: RtcpHandler,
    ) -> None:
        super().__init__(ice_servers, announced_address)
        self._on_rtcp = on_rtcp
        self._offer: Any = None  # the last offer, as aiortc parsed it (for its SSRCs)
        self.offered_mlines = 0
        self._answer_sections = SectionCache()  # the last answer's m-sections, parsed
        #: the senders' reports (SR + SDES), sent by the room's tick (Participant.tick)
        self.reports = SenderReports(self.send_rtcp_now)

    def add_transceiver(
        self,
        kind: str,
        codec: NegotiatedTrack,
        stream_id: str,
        sender_report: Callable[[RTCRtpSender], bytes | None],
    ) -> RTCRtpTransceiver:
        """Add a sendonly transceiver that will carry one forwarded track."""
        with server_side():
            transceiver = self.pc.addTransceiver(IdleTrack(kind), direction="sendonly")
        _slim_idle_receiver(transceiver.receiver)  # sendonly: its receiver never starts
        caps = RTCRtpSender.getCapabilities(kind).codecs
        preferred = [c for c in caps if same_codec(c, codec)][:1]
        if preferred:
            rtx = [
                c for c in caps if c.mimeType.lower() == f"{kind}/rtx"
            ]  # aiortc matches rtx by apt itself
            transceiver.setCodecPreferences(preferred + rtx)
        sender = transceiver.sender
        sender._stream_id = stream_id

        take_over(sender, self.reports, sender_report)  # one RTCP timer per connection
        self._hook()
        return transceiver

    def _hook(self) -> None:
        for t in self.pc.getTransceivers():
            dtls = t.sender.transport
            if dtls is not None and not getattr(dtls, "_mediaserver_hooked", False):
                setattr(dtls, "_handle_rtp_data", _noop_rtp)  # noqa: B010
                setattr(dtls, "_handle_rtcp_data", _queued_rtcp(self._on_rtcp))  # noqa: B010
                setattr(dtls, "_mediaserver_hooked", True)  # noqa: B010
                self._dtls = dtls
                rxpath.attach(dtls, self._direct_receive)

    def _direct_receive(self, rx: fastpath.RxSession) -> rxpath.DirectReceive:
        return rxpath.subscriber_receive(rx, self._on_rtcp)

    async def create_offer(self) -> str:
        # Every transport gathered already (a renegotiation): setLocalDescription adds
        # nothing to what createOffer wrote, so its text is the local description and
        # need not be serialised again (tests/unit/test_answer_sections.py).
        gathered = all(
            t.receiver.transport.transport.iceGatherer.state == "completed"
            for t in self.pc.getTransceivers()
        )
        with captured_parse() as parsed, own_descriptions():
            offer = await self.pc.createOffer()
            await self.pc.setLocalDescription(offer)
        offer_sdp = self._local_sdp(offer.sdp if gathered else None)
        self._offer = parsed[0] if parsed else parse_sdp(offer_sdp, "offer")
        self.offered_mlines = len(self._offer.media)
        return offer_sdp

    async def apply_answer(self, answer_sdp: str) -> list[NegotiatedTrack]:
        # bounded by our offer, as in check_sdp_bounds (dual-stack aiortc: ~61 KB at 48)
        bound = max(MAX_SDP_BYTES, self.offered_mlines * ANSWER_BYTES_PER_MLINE)
        with reused_sections(self._answer_sections):
            answer = parse_sdp(answer_sdp, "answer", bound)
        assert self._offer is not None
        await self._set_remote(answer_sdp, "answer", answer)
        return checked_tracks(answer, self._offer)
