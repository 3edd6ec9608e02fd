"""Native SRTP/SRTCP unprotect (the direct receive path) against pylibsrtp.

Two receive sessions made from one key see the same packets: one unprotects natively
(``_fastpath.RxSession``: libsrtp's ``srtp_unprotect`` called from C on the session's
``srtp_t``), the other with pylibsrtp's ``Session.unprotect``. The output is byte
identical, and a packet one refuses (replayed, tampered tag or payload, too long,
malformed) the other refuses too (None natively, ``pylibsrtp.Error``/``ValueError``
from pylibsrtp). ``make asan`` runs the fuzz test under AddressSanitizer with more
iterations (FASTPATH_FUZZ_ITERATIONS).
"""

from __future__ import annotations

import os
import random
import struct
from collections.abc import Callable

import pylibsrtp
import pytest
from pylibsrtp import Policy, Session
from retained import retained_bytes

from mediaserver.sfu import fastpath

native_only = pytest.mark.skipif(
    fastpath.UNPROTECT != "native", reason=f"native unprotect not active: {fastpath.REASON}"
)
FUZZ_ITERATIONS = int(os.environ.get("FASTPATH_FUZZ_ITERATIONS", "3000"))


def _sessions(n: int) -> tuple[Session, list[Session]]:
    """One sender and ``n`` receivers with one key, set up the way aiortc does."""
    key = os.urandom(30)

    def make(kind: int) -> Session:
        policy = Policy(key=key, ssrc_type=kind)
        policy.allow_repeat_tx = True
        policy.window_size = 1024
        return Session(policy)

    return make(Policy.SSRC_ANY_OUTBOUND), [make(Policy.SSRC_ANY_INBOUND) for _ in range(n)]


def _reference(fn: Callable[[bytes], bytes], packet: bytes) -> bytes | None:
    try:
        return fn(packet)
    except (pylibsrtp.Error, ValueError):
        return None


def rtp(seq: int, ts: int, payload: bytes, ssrc: int = 0x1234) -> bytes:
    return struct.pack("!BBHII", 0x80, 96, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def rtcp_rr(ssrc: int) -> bytes:
    return struct.pack("!BBHI", 0x80, 201, 1, ssrc)


def _stream(tx: Session, rnd: random.Random) -> list[tuple[str, bytes]]:
    """Protected packets and what is done to some of them on the way."""
    out: list[tuple[str, bytes]] = []
    seq = 65_500  # wraps (rollover counter)
    for k in range(800):
        seq += rnd.choice((1, 1, 1, 2, -2))
        size = rnd.choice((0, 1, 100, 1000, 1300))
        packet = tx.protect(rtp(seq, k * 3000, rnd.randbytes(size), ssrc=0x1234 + k % 2))
        out.append(("rtp", packet))
        if k % 17 == 0:
            out.append(("rtp", packet))  # replayed
        if k % 23 == 0:  # tampered auth tag
            out.append(("rtp", packet[:-1] + bytes((packet[-1] ^ 1,))))
        if k % 29 == 0:  # tampered payload
            mid = len(packet) // 2
            out.append(("rtp", packet[:mid] + bytes((packet[mid] ^ 0x80,)) + packet[mid + 1 :]))
        if k % 31 == 0:
            out.append(("rtp", packet[:-4]))  # cut short
        if k % 10 == 0:
            srtcp = tx.protect_rtcp(rtcp_rr(0x55 + k))
            out.append(("rtcp", srtcp))
            if k % 20 == 0:
                out.append(("rtcp", srtcp))  # replayed
            if k % 30 == 0:
                out.append(("rtcp", srtcp[:-1] + bytes((srtcp[-1] ^ 4,))))
    last = tx.protect(rtp(seq + 1, 0, bytes(1300)))
    out.append(("rtp", last + bytes(1501 - len(last))))  # longer than pylibsrtp's buffer
    out.append(("rtp", last))
    return out


@native_only
@pytest.mark.parametrize("seed", [1, 2])
def test_native_unprotect_is_byte_identical_to_pylibsrtp(seed: int) -> None:
    tx, (a, b) = _sessions(2)
    native = fastpath.new_rx_session(a)
    assert type(native).__name__ == "RxSession"  # the C type, not the twin
    refused = accepted = 0
    for kind, packet in _stream(tx, random.Random(seed)):
        if kind == "rtp":
            got, want = native.rtp(packet), _reference(b.unprotect, packet)
        else:
            got, want = native.rtcp(packet), _reference(b.unprotect_rtcp, packet)
        assert got == want, (kind, packet.hex())
        if want is None:
            refused += 1
        else:
            accepted += 1
    assert refused > 50 and accepted > 600
    assert native.refused == refused


def test_the_python_twin_is_pylibsrtp() -> None:
    tx, (a, b) = _sessions(2)
    twin = fastpath.new_rx_session(a, native=False)
    assert isinstance(twin, fastpath.PyRxSession)
    for kind, packet in _stream(tx, random.Random(3)):
        if kind == "rtp":
            assert twin.rtp(packet) == _reference(b.unprotect, packet)
        else:
            assert twin.rtcp(packet) == _reference(b.unprotect_rtcp, packet)


@native_only
def test_replayed_and_tampered_packets_are_refused() -> None:
    tx, (a,) = _sessions(1)
    native = fastpath.new_rx_session(a)
    clear = rtp(7, 90_000, b"payload")
    packet = tx.protect(clear)
    assert native.rtp(packet) == clear
    assert native.rtp(packet) is None  # replay
    later = tx.protect(rtp(8, 90_000, b"payload"))
    assert native.rtp(later[:-1] + bytes((later[-1] ^ 0xFF,))) is None  # auth tag
    assert native.rtp(later) == rtp(8, 90_000, b"payload")  # the genuine one still passes
    assert native.refused == 2


def _garbage(rnd: random.Random, valid: list[bytes]) -> bytes:
    choice = rnd.randrange(7)
    if choice == 0:
        return b""
    if choice == 1:
        return rnd.randbytes(rnd.randrange(1, 12))  # shorter than a header
    if choice == 2:
        return rnd.randbytes(rnd.randrange(12, 1600))
    if choice == 3:
        return bytes((0x80 | rnd.randrange(16),)) + rnd.randbytes(rnd.randrange(0, 40))
    packet = rnd.choice(valid)
    if choice == 4:
        return packet[: rnd.randrange(len(packet) + 1)]
    if choice == 5:  # one flipped byte, anywhere (CSRC count, extension bit, length)
        i = rnd.randrange(len(packet))
        return packet[:i] + bytes((packet[i] ^ (1 << rnd.randrange(8)),)) + packet[i + 1 :]
    return packet + rnd.randbytes(rnd.randrange(1, 2000))


@native_only
def test_fuzzed_input_agrees_with_pylibsrtp_and_never_crashes() -> None:
    tx, (a, b) = _sessions(2)
    native = fastpath.new_rx_session(a)
    rnd = random.Random(11)
    valid = [tx.protect(rtp(k, k, rnd.randbytes(rnd.randrange(0, 200)))) for k in range(64)]
    valid += [tx.protect_rtcp(rtcp_rr(k)) for k in range(16)]
    for _ in range(FUZZ_ITERATIONS):
        packet = _garbage(rnd, valid)
        if rnd.randrange(2):
            assert native.rtp(packet) == _reference(b.unprotect, packet)
        else:
            assert native.rtcp(packet) == _reference(b.unprotect_rtcp, packet)
    for packet in (b"", b"\x80", b"\x80\xc8"):
        assert native.rtp(packet) is None and native.rtcp(packet) is None
    with pytest.raises(TypeError):
        native.rtp(bytearray(20))  # type: ignore[arg-type]


@native_only
def test_native_unprotect_memory_is_bounded() -> None:
    tx, (a,) = _sessions(1)
    native = fastpath.new_rx_session(a)
    rnd = random.Random(4)
    packets = [tx.protect(rtp(k, k, rnd.randbytes(300))) for k in range(2048)]
    bad = [rnd.randbytes(rnd.randrange(0, 200)) for _ in range(256)]

    def burst() -> None:
        for k, packet in enumerate(packets):
            native.rtp(packet)  # the first burst accepts, the next ones replay: refused
            native.rtcp(bad[k & 255])

    burst()
    growth = retained_bytes(burst)
    assert growth < 64 * 1024, f"{growth} bytes retained"


@native_only
def test_the_session_outlives_its_owner() -> None:
    """The RxSession keeps the pylibsrtp Session (which frees the srtp_t) alive."""
    tx, (a,) = _sessions(1)
    native = fastpath.new_rx_session(a)
    del a
    clear = rtp(1, 1, b"x")
    assert native.rtp(tx.protect(clear)) == clear


def test_srtp_unprotect_has_the_libsrtp_2_signature() -> None:
    """Canary: the C code calls srtp_unprotect[_rtcp](srtp_t, void *, int *) (libsrtp
    2.x); fastpath unprotects with pylibsrtp when they have another one."""
    from pylibsrtp._binding import ffi, lib

    for name in ("srtp_unprotect", "srtp_unprotect_rtcp"):
        assert ffi.typeof(ffi.addressof(lib, name)).cname == fastpath.SRTP_PROTECT_TYPE
