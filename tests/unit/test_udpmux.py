"""Demultiplexing rules of the shared media socket (mediaserver/sfu/udpmux.py)."""

from __future__ import annotations

from typing import Any

import pytest
from aioice import stun

from mediaserver.sfu.udpmux import UFRAG_LENGTH, UdpMux, _MuxSocket


class Agent:
    def __init__(self, password: str) -> None:
        self._password = password.encode()
        self.stun: list[tuple[bytes, Any]] = []
        self.data: list[bytes] = []
        #: what answer_check says (ice_sockets.answer_check: a plain check on the
        #: agent's established pair, answered on the spot), and what it answered
        self.established = False
        self.answered: list[tuple[bytes, Any]] = []

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.stun.append((data, addr))

    def deliver(self, data: bytes) -> None:
        self.data.append(data)

    def password(self) -> bytes:
        return self._password

    def answer_check(self, data: bytes, addr: Any) -> bool:
        if self.established:
            self.answered.append((data, addr))
        return self.established


def _check(username: str, key: bytes) -> tuple[bytes, bytes]:
    msg = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    msg.attributes["USERNAME"] = username
    msg.add_message_integrity(key)
    msg.add_fingerprint()
    return bytes(msg), msg.transaction_id


def _socket() -> tuple[_MuxSocket, UdpMux]:
    mux = UdpMux(0, [])
    return _MuxSocket(mux, "127.0.0.1", 5000), mux


def test_ufrags_are_long_random_and_unique():
    mux = UdpMux(0, [])
    ufrags = {mux.new_ufrag() for _ in range(1000)}
    assert len(ufrags) == 1000
    assert all(len(u) == UFRAG_LENGTH and u.isalnum() for u in ufrags)
    taken = next(iter(ufrags))
    with pytest.raises(ValueError, match="already in use"):
        mux.claim_ufrag(taken)
    mux.release_ufrag(taken)
    mux.claim_ufrag(taken)


def test_authenticated_check_teaches_the_address_then_media_follows_it():
    sock, mux = _socket()
    a, b = Agent("pwd-a" * 5), Agent("pwd-b" * 5)
    sock.by_ufrag.update({"ufragA": a, "ufragB": b})
    peer = ("127.0.0.1", 40000)
    rtp = b"\x80" + bytes(30)

    sock.datagram_received(rtp, peer)  # unknown sender: dropped
    assert mux.dropped == 1 and not a.data

    forged, _ = _check("ufragA:x", b"wrong password")
    sock.datagram_received(forged, peer)  # reaches A (which answers 401) but teaches nothing
    assert len(a.stun) == 1 and peer not in sock.by_addr

    good, _ = _check("ufragA:x", a.password())
    sock.datagram_received(good, peer)
    sock.datagram_received(rtp, peer)
    assert a.data == [rtp] and not b.data

    # The same address authenticating for B moves its traffic to B.
    sock.datagram_received(_check("ufragB:y", b.password())[0], peer)
    sock.datagram_received(rtp, peer)
    assert b.data == [rtp]

    sock.forget(b)
    assert "ufragB" not in sock.by_ufrag and peer not in sock.by_addr


def test_the_known_agent_answers_its_checks_first():
    """A check from an address already learnt is offered to that address's agent first
    (its established pair: answered on the spot, aioice never sees it); a check it does
    not take follows the general rules."""
    sock, _ = _socket()
    a, b = Agent("pwd-a" * 5), Agent("pwd-b" * 5)
    sock.by_ufrag.update({"ufragA": a, "ufragB": b})
    peer = ("127.0.0.1", 40000)
    sock.datagram_received(_check("ufragA:x", a.password())[0], peer)
    assert sock.by_addr[peer] is a and len(a.stun) == 1

    a.established = True
    again, _ = _check("ufragA:x", a.password())
    sock.datagram_received(again, peer)
    assert a.answered == [(again, peer)] and len(a.stun) == 1

    a.established = False  # declined (here: another agent's check): the usual path
    sock.datagram_received(_check("ufragB:y", b.password())[0], peer)
    assert len(b.stun) == 1 and sock.by_addr[peer] is b


def test_responses_are_routed_by_transaction_id():
    sock, mux = _socket()
    a = Agent("p" * 22)
    _request, tid = _check("remote:local", b"k")
    response = stun.Message(
        message_method=stun.Method.BINDING,
        message_class=stun.Class.RESPONSE,
        transaction_id=tid,
    )
    sock.datagram_received(bytes(response), ("127.0.0.1", 3478))
    assert mux.dropped == 1
    sock.by_tx[tid] = a
    sock.datagram_received(bytes(response), ("127.0.0.1", 3478))
    assert len(a.stun) == 1
