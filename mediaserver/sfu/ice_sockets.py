"""The server's ICE sockets: where a datagram for a server peer connection enters.

aiortc creates one ``aioice.ice.Connection`` per ICE transport through the name
``aiortc.rtcicetransport.Connection``; this module replaces it by
:class:`ServerConnection`, which binds its host candidates itself:

- on the process's shared media port (``rtc.udp_port``, :mod:`.udpmux`), through a
  :class:`_MuxProtocol` per ICE agent and socket;
- in a port range (``rtc.port_min``/``port_max``), or on an ephemeral port (neither
  set), through a :class:`_DirectProtocol` per socket.

Both protocols hand an SRTP/SRTCP datagram (first byte 128..191, RFC 7983) straight to
the connection's :attr:`ServerConnection.direct_rx` once the peer connection set one
(its DTLS handshake is done, see :mod:`.rxpath`): no asyncio queue, no task switch.
Everything else (STUN, DTLS, SRTP before the handshake) takes aioice's path: the
connection's queue, read by aiortc's DTLS transport. In-process SDK peers (tests, bots)
keep aioice's own sockets unless a port range is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ipaddress
import logging
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import aioice.ice
import aiortc.rtcicetransport

from . import stun_binding
from .udpmux import SOCKET_BUFFER_BYTES, UdpMux, bind_in_range

__all__ = [
    "DirectReceive",
    "ServerConnection",
    "configure_ice_addresses",
    "configure_port_range",
    "configure_udp_mux",
    "is_server_side",
    "server_side",
]

#: Takes one SRTP or SRTCP datagram as it came off the socket.
DirectReceive = Callable[[bytes], None]

#: Seconds without an authenticated consent check from the remote after which a server
#: connection closes (RFC 7675 section 5.1: consent expires after 30 s); browsers and
#: aioice check every ~5 s.
CONSENT_TIMEOUT = 30.0

_log = logging.getLogger(__name__)

_original_get_host_addresses = aioice.ice.get_host_addresses


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
is_server_side = _SERVER_SIDE.get


@contextlib.contextmanager
def server_side() -> Iterator[None]:
    """ICE agents created inside are the server's (shared media port, direct receive);
    in-process SDK peers are not."""
    token = _SERVER_SIDE.set(True)
    try:
        yield
    finally:
        _SERVER_SIDE.reset(token)


class _DirectProtocol(aioice.ice.StunProtocol):
    """aioice's per-socket protocol, with SRTP/SRTCP going straight to ``direct_rx``."""

    receiver: ServerConnection

    def datagram_received(self, data: bytes | str, addr: tuple[Any, ...]) -> None:
        rx = self.receiver.direct_rx
        first = cast(bytes, data)[0] if data else 255  # a datagram socket gives bytes
        if rx is not None and 127 < first < 192:
            rx(cast(bytes, data))
            return
        if first < 4 and answer_check(self.receiver, self, cast(bytes, data), addr):
            return
        super().datagram_received(data, addr)


class _MuxProtocol(aioice.ice.StunProtocol):
    """An ICE agent's view of a shared socket (:mod:`.udpmux`): closing it only unregisters."""

    receiver: ServerConnection

    def __init__(self, receiver: ServerConnection, mux_socket: Any) -> None:
        super().__init__(receiver)
        self._mux_socket = mux_socket
        self.connection_made(mux_socket.transport)

    def deliver(self, data: bytes) -> None:
        receiver = self.receiver
        rx = receiver.direct_rx
        if rx is not None and data and 127 < data[0] < 192:
            rx(data)
            return
        receiver.data_received(data, self.local_candidate.component)

    def password(self) -> bytes:
        return str(self.receiver.local_password).encode("utf8")

    def answer_check(self, data: bytes, addr: tuple[Any, ...]) -> bool:
        return answer_check(self.receiver, self, data, addr)

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


class ServerConnection(aioice.ice.Connection):
    """An ICE agent of a server peer connection. aioice binds a socket per host candidate
    on an ephemeral port; this binds them itself: in a range (``rtc.port_min``/
    ``port_max``), on the process's one media port (``rtc.udp_port``, with a long random
    local username fragment), or on an ephemeral port, so that its sockets' protocols
    can take the direct receive path (:attr:`direct_rx`)."""

    port_min = 0
    port_max = 0
    mux: UdpMux | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        server = _SERVER_SIDE.get()
        mux = ServerConnection.mux if server else None
        if mux is not None:
            # aiortc may pass the ufrag of another transport of the same peer connection:
            # every agent gets its own, so that the mux can route by it.
            kwargs["local_username"] = mux.new_ufrag()
        super().__init__(*args, **kwargs)
        self._mux = mux
        self._server = server
        #: Set by the peer connection once its DTLS handshake is done (:mod:`.rxpath`):
        #: SRTP/SRTCP datagrams go there synchronously instead of to the queue.
        self.direct_rx: DirectReceive | None = None
        #: loop time of the remote's last authenticated check on a nominated pair
        self.consent_at = 0.0

    def data_received(self, data: bytes, component: int) -> None:
        # relayed (TURN) datagrams arrive here, past the protocols above
        rx = self.direct_rx
        if rx is not None and data and 127 < data[0] < 192:
            rx(data)
            return
        super().data_received(data, component)

    def on_nominated_pair(self, addr: tuple[Any, ...], protocol: Any) -> bool:
        """Whether ``addr`` on ``protocol`` is the remote end of a nominated pair."""
        return any(
            pair.protocol is protocol and pair.remote_addr == addr
            for pair in self._nominated.values()
        )

    def check_incoming(self, message: Any, addr: tuple[str, int], protocol: Any) -> None:
        # aioice calls this once the check is authenticated (and answered)
        super().check_incoming(message, addr, protocol)
        if self.on_nominated_pair(addr, protocol):
            self.consent_at = asyncio.get_running_loop().time()

    async def query_consent(self) -> None:
        """RFC 7675 consent, on the server passively, as ICE-lite servers keep it (e.g.
        mediasoup): the remote's own consent checks, authenticated with our password and
        coming from the pair's address, renew it; none for :data:`CONSENT_TIMEOUT`
        seconds and the connection closes (as aioice closes it after its sixth
        unanswered check). aioice's active checks (its default, kept for SDK peers)
        cost the server a STUN transaction and two wake-ups per connection every ~5 s."""
        if not self._server:
            return await super().query_consent()
        loop = asyncio.get_running_loop()
        self.consent_at = max(self.consent_at, loop.time())  # connected just now
        while True:
            # wake when it could first have expired (~ every 30 s, not with each check)
            await asyncio.sleep(max(0.0, self.consent_at + CONSENT_TIMEOUT - loop.time()))
            if loop.time() - self.consent_at >= CONSENT_TIMEOUT:
                _log.info("ICE consent expired: no check from the remote in %ss", CONSENT_TIMEOUT)
                self._query_consent_task = None
                return await self.close()

    async def get_component_candidates(
        self, component: int, addresses: list[str], timeout: int = 5
    ) -> list[Any]:
        if not self._server and not self.port_min:
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
        sock = bind_in_range(address, self.port_min, self.port_max)  # (0, 0): ephemeral
        if sock is None:
            return None
        with contextlib.suppress(OSError):  # as aioice does (its size is smaller)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
        made: tuple[Any, Any] = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _DirectProtocol(self), sock=sock
        )
        return made[1]

    async def close(self) -> None:
        self.direct_rx = None
        await super().close()
        if self._mux is not None:
            self._mux.release_ufrag(self.local_username)


#: ICE checks answered by :func:`answer_check` (``/healthz`` does not show it; tests do)
answered_checks = [0]


def answer_check(conn: ServerConnection, protocol: Any, data: bytes, addr: tuple[Any, ...]) -> bool:
    """Answer a STUN check on an established pair without aioice (:mod:`.stun_binding`):
    the consent checks a connected peer sends every few seconds. Only a check aioice
    would answer and then do nothing more with: a Binding request from the remote address
    of a nominated pair on this socket, with the right USERNAME and MESSAGE-INTEGRITY, the
    other role than ours, no USE-CANDIDATE. It renews consent (``consent_at``). False:
    the datagram goes to aioice as before (which answers errors, nominations, new pairs)."""
    if not conn._server or conn.remote_username is None or conn._closing:
        return False
    check = stun_binding.parse_check(data)
    if check is None or check.use_candidate or check.controlling is not (not conn.ice_controlling):
        return False
    peer = (addr[0], addr[1])
    if not conn.on_nominated_pair(peer, protocol):
        return False
    key = conn.local_password.encode("utf8")
    if check.username != f"{conn.local_username}:{conn.remote_username}".encode() or not (
        stun_binding.integrity_ok(data, check, key)
    ):
        return False
    protocol.transport.sendto(stun_binding.success_response(check.transaction_id, peer, key), addr)
    conn.consent_at = asyncio.get_running_loop().time()
    answered_checks[0] += 1
    return True


# Server peer connections always get a ServerConnection (direct receive); SDK peers
# created in the same process get aioice's own behaviour unless a port range is set.
setattr(aiortc.rtcicetransport, "Connection", ServerConnection)  # noqa: B010


def configure_port_range(port_min: int, port_max: int) -> None:
    """Bind ICE host candidates within [port_min, port_max] (0, 0: ephemeral ports)."""
    ServerConnection.port_min = port_min
    ServerConnection.port_max = port_max


def configure_udp_mux(mux: UdpMux | None) -> None:
    """Server peer connections share ``mux``'s sockets (None: one socket per connection)."""
    ServerConnection.mux = mux
