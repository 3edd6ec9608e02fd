"""One UDP port for every peer connection of the process (``rtc.udp_port``).

One socket per ICE address, bound at start-up, shared by all ICE agents. A datagram is
handed to the ICE agent (an aioice ``StunProtocol`` made in :mod:`.ice_sockets`) it belongs to:

- a STUN request: by the local ICE username fragment (the part of USERNAME before the
  colon); when its MESSAGE-INTEGRITY verifies against that agent's password, the sender's
  address is learned for that agent (the latest authenticated check wins);
- a STUN response or error: by transaction id (registered while a request is pending);
- anything else (DTLS, SRTP/SRTCP, STUN indications): by the learned remote address.

Anything that matches no agent is dropped and counted. This module parses STUN with
aioice's public ``stun`` module but uses no private aiortc/aioice name; the agents'
side (``_MuxProtocol`` in :mod:`.ice_sockets`) does.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import socket
import string
from typing import Any, Protocol, cast

from aioice import stun

__all__ = ["MuxedAgent", "UdpMux", "UdpPortInUse", "bind_in_range", "bind_udp"]

_UFRAG_CHARS = string.ascii_letters + string.digits
#: 20 characters of [A-Za-z0-9]: about 119 random bits (aioice's own default is 4 chars).
UFRAG_LENGTH = 20
#: SO_RCVBUF / SO_SNDBUF asked for (the kernel caps it at net.core.[rw]mem_max).
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024


class UdpPortInUse(OSError):
    """The configured media port cannot be bound (typically: another process has it)."""


class MuxedAgent(Protocol):
    """What the mux needs from an ICE agent's per-socket protocol (see ice_sockets.py)."""

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None: ...

    def deliver(self, data: bytes) -> None: ...

    def password(self) -> bytes: ...

    def answer_check(self, data: bytes, addr: tuple[Any, ...]) -> bool: ...


def bind_udp(address: str, port: int, buffer_bytes: int = SOCKET_BUFFER_BYTES) -> socket.socket:
    """A non-blocking UDP socket bound to (address, port) with large buffers."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, buffer_bytes)
            except OSError:  # pragma: no cover - refused by the kernel: keep its default
                pass
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        raise UdpPortInUse(
            exc.errno,
            f"cannot bind the media port udp {address}:{port} (rtc.udp_port): "
            f"{exc.strerror}; another process (a second server?) probably uses it: "
            "choose another rtc.udp_port or stop the other process",
        ) from None
    sock.setblocking(False)
    return sock


def bind_in_range(address: str, port_min: int, port_max: int) -> socket.socket | None:
    """A socket bound to a free port in [port_min, port_max] (random start), or None."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    ports = list(range(port_min, port_max + 1))
    start = random.randrange(len(ports))
    for port in ports[start:] + ports[:start]:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((address, port))
        except OSError:
            sock.close()
            continue
        sock.setblocking(False)
        return sock
    return None


class _MuxSocket(asyncio.DatagramProtocol):
    """One bound socket and its demultiplexing tables."""

    def __init__(self, mux: UdpMux, address: str, port: int) -> None:
        self.mux = mux
        self.address = address
        self.port = port
        self.transport: asyncio.DatagramTransport | None = None
        self.by_ufrag: dict[str, MuxedAgent] = {}
        self.by_tx: dict[bytes, MuxedAgent] = {}
        self.by_addr: dict[tuple[Any, ...], MuxedAgent] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        addr = (addr[0], addr[1])
        if data and data[0] < 4:  # RFC 7983: 0-3 is STUN
            self._stun_received(data, addr)
            return
        agent = self.by_addr.get(addr)
        if agent is None:
            self.mux.dropped += 1
            return
        agent.deliver(data)

    def _stun_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        known = self.by_addr.get(addr)
        if known is not None and known.answer_check(data, addr):
            return  # a check on an established pair, answered at once
        try:
            message = stun.parse_message(data)
        except ValueError:
            self.mux.dropped += 1
            return
        agent: MuxedAgent | None
        if message.message_class in (stun.Class.RESPONSE, stun.Class.ERROR):
            agent = self.by_tx.get(message.transaction_id)
        elif message.message_class == stun.Class.REQUEST:
            username = message.attributes.get("USERNAME")
            local = username.partition(":")[0] if isinstance(username, str) else ""
            agent = self.by_ufrag.get(local)
            if agent is not None and message.check_message_integrity(agent.password()):
                self.by_addr[addr] = agent
        else:
            agent = self.by_addr.get(addr)
        if agent is None:
            self.mux.dropped += 1
            return
        agent.datagram_received(data, addr)

    def forget(self, agent: MuxedAgent) -> None:
        tables: tuple[dict[Any, MuxedAgent], ...] = (self.by_ufrag, self.by_tx, self.by_addr)
        for table in tables:
            for key in [k for k, v in table.items() if v is agent]:
                del table[key]


class UdpMux:
    """The process's shared media sockets: one per ICE address, all on ``port``."""

    def __init__(self, port: int, addresses: list[str]) -> None:
        self.port = port
        self.dropped = 0
        self._ufrags: set[str] = set()
        self._socks: dict[str, socket.socket] = {}
        self.sockets: dict[str, _MuxSocket] = {}
        try:
            for address in addresses:
                self._socks[address] = bind_udp(address, port)
        except OSError:
            self.close()
            raise

    async def start(self) -> None:
        """Attach the bound sockets to the running event loop."""
        loop = asyncio.get_running_loop()
        for address, sock in self._socks.items():
            if address in self.sockets:
                continue
            mux_socket = _MuxSocket(self, address, self.port)
            await loop.create_datagram_endpoint(lambda s=mux_socket: s, sock=sock)  # type: ignore[misc]
            self.sockets[address] = mux_socket

    def new_ufrag(self) -> str:
        """A fresh local ICE username fragment, unique in this process."""
        while True:
            ufrag = "".join(secrets.choice(_UFRAG_CHARS) for _ in range(UFRAG_LENGTH))
            if ufrag not in self._ufrags:
                self._ufrags.add(ufrag)
                return ufrag

    def claim_ufrag(self, ufrag: str) -> None:
        """Reserve a username fragment chosen elsewhere; duplicates are refused."""
        if ufrag in self._ufrags:
            raise ValueError(f"ICE username fragment {ufrag!r} is already in use")
        self._ufrags.add(ufrag)

    def release_ufrag(self, ufrag: str) -> None:
        self._ufrags.discard(ufrag)

    @property
    def agents(self) -> int:
        """Registered ICE agents (per socket, summed): 0 when every connection closed."""
        return sum(len(s.by_ufrag) for s in self.sockets.values())

    def close(self) -> None:
        for mux_socket in self.sockets.values():
            if mux_socket.transport is not None:
                mux_socket.transport.close()
        for sock in self._socks.values():
            sock.close()
        self.sockets.clear()
        self._socks.clear()
