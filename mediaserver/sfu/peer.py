"""The only module that touches aiortc's peer connections (and its private names).

Every private aiortc attribute used here is listed in :data:`AIORTC_PRIVATE_NAMES` and
checked by the canary test, so an aiortc upgrade that renames one fails loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ipaddress
import logging
import struct
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any

import aioice.ice
import aiortc.rtcicetransport
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

from . import aiortc_speedups, fastpath
from .aiortc_speedups import captured_parse, own_descriptions, preparsed
from .negotiation import NegotiatedTrack, SdpError, checked_tracks, parse_sdp, same_codec
from .udpmux import UdpMux, bind_in_range

__all__ = [
    "AIORTC_PRIVATE_NAMES",
    "IdleTrack",
    "PublisherPeer",
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
    ("aiortc.rtcrtpsender.RTCRtpSender", "_send_rtcp"),
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
    ("aiortc.rtcicetransport.RTCIceGatherer source", "local_username=local_username"),
)

_ssrc_at = struct.Struct("!I")
RtpHandler = Callable[[bytes, float], Awaitable[None]]
RtcpHandler = Callable[[bytes], Awaitable[None]]

_original_get_host_addresses = aioice.ice.get_host_addresses


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


def configure_ice_addresses(addresses: Sequence[str]) -> None:
    """Gather ICE host candidates on exactly ``addresses`` (process-wide).

    aioice skips loopback when it enumerates interfaces, and enumerates every other
    interface; an explicit list fixes both. An empty list restores aioice's default.
    """
    if not addresses:
        aioice.ice.get_host_addresses = _original_get_host_addresses
        return
    fixed = list(addresses)

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in fixed if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = get_host_addresses


_SERVER_SIDE: contextvars.ContextVar[bool] = contextvars.ContextVar("server_side", default=False)


@contextlib.contextmanager
def _server_side() -> Iterator[None]:
    """ICE agents created inside use the shared media port (in-process SDK peers don't)."""
    token = _SERVER_SIDE.set(True)
    try:
        yield
    finally:
        _SERVER_SIDE.reset(token)


aiortc_speedups.install(_SERVER_SIDE.get)


class _MuxProtocol(aioice.ice.StunProtocol):
    """An ICE agent's view of a shared socket (:mod:`.udpmux`): closing it only unregisters."""

    def __init__(self, receiver: aioice.ice.Connection, mux_socket: Any) -> None:
        super().__init__(receiver)
        self._mux_socket = mux_socket
        self.connection_made(mux_socket.transport)

    def deliver(self, data: bytes) -> None:
        self.receiver.data_received(data, self.local_candidate.component)

    def password(self) -> bytes:
        return str(self.receiver.local_password).encode("utf8")

    async def request(
        self,
        request: Any,
        addr: tuple[str, int],
        integrity_key: bytes | None = None,
        retransmissions: int | None = None,
    ) -> Any:
        by_tx = self._mux_socket.by_tx
        by_tx[request.transaction_id] = self
        try:
            return await super().request(request, addr, integrity_key, retransmissions)
        finally:
            by_tx.pop(request.transaction_id, None)

    async def close(self) -> None:
        self._mux_socket.forget(self)


class _ServerConnection(aioice.ice.Connection):
    """aioice binds a socket per host candidate on an ephemeral port; this binds them in
    a range (``rtc.port_min``/``port_max``), or shares the process's one media port
    (``rtc.udp_port``) with a long random local username fragment."""

    port_min = 0
    port_max = 0
    mux: UdpMux | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        mux = _ServerConnection.mux if _SERVER_SIDE.get() else None
        if mux is not None:
            # aiortc may pass the ufrag of another transport of the same peer connection:
            # every agent gets its own, so that the mux can route by it.
            kwargs["local_username"] = mux.new_ufrag()
        super().__init__(*args, **kwargs)
        self._mux = mux

    async def get_component_candidates(
        self, component: int, addresses: list[str], timeout: int = 5
    ) -> list[Any]:
        if self._mux is None and not self.port_min:
            return await super().get_component_candidates(component, addresses, timeout)
        candidates: list[Any] = []
        protocols: list[Any] = []
        for address in addresses:
            protocol = await self._host_protocol(address)
            if protocol is None:
                continue
            host, port = protocol.transport.get_extra_info("sockname")[:2]
            protocol.local_candidate = aioice.Candidate(
                foundation=getattr(aioice.ice, "candidate_foundation")("host", "udp", host),  # noqa: B009
                component=component,
                transport="udp",
                priority=getattr(aioice.ice, "candidate_priority")(component, "host"),  # noqa: B009
                host=host,
                port=port,
                type="host",
            )
            candidates.append(protocol.local_candidate)
            protocols.append(protocol)
        self._protocols += protocols
        if self.stun_server:
            for protocol in protocols:
                if ipaddress.ip_address(protocol.local_candidate.host).version == 4:
                    try:
                        cand, _ = await asyncio.wait_for(
                            aioice.ice.server_reflexive_candidate(protocol, self.stun_server),
                            timeout,
                        )
                        candidates.append(cand)
                    except Exception:
                        pass
        # TURN (relayed) candidates: aioice's own code, with no host addresses.
        candidates += await super().get_component_candidates(component, [], timeout)
        return candidates

    async def _host_protocol(self, address: str) -> Any:
        if self._mux is not None:
            mux_socket = self._mux.sockets.get(address)
            if mux_socket is None:
                return None
            protocol = _MuxProtocol(self, mux_socket)
            mux_socket.by_ufrag[self.local_username] = protocol
            return protocol
        sock = bind_in_range(address, self.port_min, self.port_max)
        if sock is None:
            return None
        made: tuple[Any, Any] = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: aioice.ice.StunProtocol(self), sock=sock
        )
        return made[1]

    async def close(self) -> None:
        await super().close()
        if self._mux is not None:
            self._mux.release_ufrag(self.local_username)


def _install_connection_class() -> None:
    wanted = _ServerConnection if (_ServerConnection.mux or _ServerConnection.port_min) else None
    setattr(aiortc.rtcicetransport, "Connection", wanted or aioice.ice.Connection)  # noqa: B010


def configure_port_range(port_min: int, port_max: int) -> None:
    """Bind ICE host candidates within [port_min, port_max] (0, 0: ephemeral ports)."""
    _ServerConnection.port_min = port_min
    _ServerConnection.port_max = port_max
    _install_connection_class()


def configure_udp_mux(mux: UdpMux | None) -> None:
    """Server peer connections share ``mux``'s sockets (None: one socket per connection)."""
    _ServerConnection.mux = mux
    _install_connection_class()


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


class _PeerBase:
    def __init__(self, ice_servers: Sequence[dict[str, Any]], announced_address: str) -> None:
        self.pc = RTCPeerConnection(configuration=make_configuration(ice_servers))
        self._announced = announced_address
        self._dtls: RTCDtlsTransport | None = None
        self._fast: tuple[Callable[[bytes], bytes], Callable[..., None], Any] | None = None
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

    def _local_sdp(self) -> str:
        from .negotiation import apply_announced_address

        desc = self.pc.localDescription
        assert desc is not None
        return apply_announced_address(desc.sdp, self._announced, _announced_map)

    def _hook(self) -> None:
        raise NotImplementedError

    async def _set_remote(self, sdp: str, sdp_type: str, parsed: Any) -> None:
        """setRemoteDescription of ``sdp`` (``parsed`` already: aiortc does not parse it
        again); aiortc's errors become :class:`SdpError`."""
        try:
            with _server_side(), preparsed(sdp, parsed):
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=sdp_type))
        except Exception as exc:
            raise SdpError(f"{sdp_type} rejected: {type(exc).__name__}: {exc}") from None
        self._hook()

    def send_rtp_now(self, data: bytes) -> bool:
        """Send one clear RTP packet synchronously: SRTP protect + UDP sendto, without
        aiortc's chain of coroutines (the hot path). False if not connected."""
        fast = self._fast
        if fast is None:
            fast = self._fast = self._resolve_fast()
            if fast is None:
                return False
        protect, sendto, addr = fast
        try:
            sendto(protect(data), addr)
        except Exception:
            self._fast = None  # re-resolve next time (e.g. a new selected pair)
            if self.native_target is not None:
                self.native_target.clear()
            return False
        return True

    def _resolve_fast(self) -> tuple[Callable[[bytes], bytes], Callable[..., None], Any] | None:
        dtls = self._dtls
        if dtls is None or dtls.state != "connected":
            return None
        pair = dtls.transport._connection._nominated.get(1)
        srtp = getattr(dtls, "_tx_srtp", None)
        if pair is None or srtp is None or pair.protocol.transport is None:
            return None
        fastpath.bind_target(self.native_target, srtp, pair.protocol.transport, pair.remote_addr)
        return srtp.protect, pair.protocol.transport.sendto, pair.remote_addr

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

    Inbound RTP never reaches aiortc's jitter buffer or decoder: the DTLS transport's
    ``_handle_rtp_data`` is replaced by a router keyed by SSRC.
    """

    def __init__(
        self,
        ice_servers: Sequence[dict[str, Any]],
        announced_address: str,
        on_rtcp: RtcpHandler,
        on_unknown_rtp: Callable[[bytes], RtpHandler | None],
    ) -> None:
        super().__init__(ice_servers, announced_address)
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
            dtls = t.receiver.transport
            if dtls is not None and not getattr(dtls, "_mediaserver_hooked", False):
                setattr(dtls, "_handle_rtp_data", self._handle_rtp_data)  # noqa: B010
                setattr(dtls, "_handle_rtcp_data", self._on_rtcp)  # noqa: B010
                setattr(dtls, "_mediaserver_hooked", True)  # noqa: B010
                self._dtls = dtls

    async def _handle_rtp_data(self, data: bytes, arrival_time_ms: int) -> None:
        if len(data) < 12:
            return
        route = self.routes.get(_ssrc_at.unpack_from(data, 8)[0])
        if route is None:
            route = self._on_unknown_rtp(data)
            if route is None:
                return
        await route(data, self._loop.time())


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

    def add_transceiver(
        self,
        kind: str,
        codec: NegotiatedTrack,
        stream_id: str,
        sender_report: Callable[[RTCRtpSender], bytes | None],
    ) -> RTCRtpTransceiver:
        """Add a sendonly transceiver that will carry one forwarded track."""
        with _server_side():
            transceiver = self.pc.addTransceiver(IdleTrack(kind), direction="sendonly")
        caps = RTCRtpSender.getCapabilities(kind).codecs
        preferred = [c for c in caps if same_codec(c, codec)][:1]
        if preferred:
            rtx = [
                c for c in caps if c.mimeType.lower() == f"{kind}/rtx"
            ]  # aiortc matches rtx by apt itself
            transceiver.setCodecPreferences(preferred + rtx)
        sender = transceiver.sender
        sender._stream_id = stream_id

        async def send_rtcp(packets: list[Any]) -> None:
            # aiortc fills its sender reports from its own (bypassed) sending: zeros.
            # Replace them with reports derived from the publisher's clock.
            from aiortc.rtp import RtcpSrPacket

            out = b""
            for packet in packets:
                if isinstance(packet, RtcpSrPacket):
                    sr = sender_report(sender)
                    if sr is not None:
                        out += sr
                else:
                    out += bytes(packet)
            if out:
                await self.send_rtp(out)

        setattr(sender, "_send_rtcp", send_rtcp)  # noqa: B010
        self._hook()
        return transceiver

    def _hook(self) -> None:
        for t in self.pc.getTransceivers():
            dtls = t.sender.transport
            if dtls is not None and not getattr(dtls, "_mediaserver_hooked", False):
                setattr(dtls, "_handle_rtp_data", _noop_rtp)  # noqa: B010
                setattr(dtls, "_handle_rtcp_data", self._on_rtcp)  # noqa: B010
                setattr(dtls, "_mediaserver_hooked", True)  # noqa: B010
                self._dtls = dtls

    async def create_offer(self) -> str:
        with captured_parse() as parsed, own_descriptions():
            await self.pc.setLocalDescription(await self.pc.createOffer())
        offer_sdp = self._local_sdp()
        self._offer = parsed[0] if parsed else parse_sdp(offer_sdp, "offer")
        self.offered_mlines = len(self._offer.media)
        return offer_sdp

    async def apply_answer(self, answer_sdp: str) -> list[NegotiatedTrack]:
        answer = parse_sdp(answer_sdp, "answer")
        assert self._offer is not None
        await self._set_remote(answer_sdp, "answer", answer)
        return checked_tracks(answer, self._offer)
