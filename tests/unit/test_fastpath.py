"""The native forwarding path against its pure-Python reference.

- The same scripted input (sequence and timestamp wrap-around, keyframe gating,
  mute/unmute, a publisher restart, late activations, RTX answers, oversized packets,
  padding, CSRCs) gives byte-identical packets on both paths.
- Sent natively (SRTP with a real libsrtp session, UDP over loopback), the packets
  decrypt with the receiver's keys to exactly the reference packets.
- Fuzzed RTP (malformed headers, extension blocks past the end, zero-length payloads,
  CSRC counts past the end): the native code raises ValueError exactly when the
  reference does and otherwise agrees with it; memory stays bounded. ``make asan`` runs
  these under AddressSanitizer with more iterations (FASTPATH_FUZZ_ITERATIONS).
"""

from __future__ import annotations

import importlib
import os
import random
import socket
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pylibsrtp import Policy, Session
from retained import retained_bytes

from mediaserver.sfu import fastpath
from mediaserver.sfu.forwarder import (
    ForwardingTrack,
    InboundExtIds,
    OutputParams,
    OutputStream,
)

pytestmark = pytest.mark.skipif(
    fastpath.PATH != "native", reason=f"native path not active: {fastpath.REASON}"
)

FUZZ_ITERATIONS = int(os.environ.get("FASTPATH_FUZZ_ITERATIONS", "3000"))
EXT_IDS = InboundExtIds(audio_level=6, abs_send_time=3)

Factory = tuple[Callable[..., ForwardingTrack], Callable[..., OutputStream]]
PYTHON: Factory = (ForwardingTrack, OutputStream)
NATIVE: Factory = (fastpath.NativeForwardingTrack, fastpath.NativeOutputStream)


def rtp(
    seq: int,
    ts: int,
    payload: bytes,
    *,
    pt: int = 96,
    marker: bool = False,
    level: int | None = None,
    csrcs: int = 0,
    padding: int = 0,
) -> bytes:
    b0 = 0x80 | csrcs | (0x10 if level is not None else 0) | (0x20 if padding else 0)
    data = struct.pack("!BBHII", b0, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts, 0x1234)
    data += b"\x00\x00\x00\x07" * csrcs
    if level is not None:
        data += struct.pack("!HH", 0xBEDE, 2) + bytes((0x10, ord("0"), 0x60, level, 0, 0, 0, 0))
    data += payload
    if padding:
        data += b"\x00" * (padding - 1) + bytes((padding,))
    return data


def vp8_payload(keyframe: bool, size: int) -> bytes:
    return bytes((0x90, 0x80, 0x05, 0x10 | (0 if keyframe else 1))) + bytes(size)


def outputs_for(video: bool) -> list[OutputParams]:
    return [
        OutputParams(0xA0000001, 111, "1", 7, 8, 9, 0xB0000001, 112),
        OutputParams(0xA0000002, 100, "a-long-mid-value-over-16", 1, 2, 0),
        OutputParams(0xA0000003, 101, "", 0, 0, 0, 0xB0000003, 102),
        OutputParams(0xA0000004, 96, "0", 3, 0, 5) if video else OutputParams(5, 9, "z", 4, 3, 2),
    ]


def script(video: bool, seed: int) -> Iterator[tuple[str, Any]]:
    """Events: ("rtp", packet), ("mute", bool), ("restart", None), ("activate", i),
    ("nack", (i, offset back))."""
    rnd = random.Random(seed)
    seq = 65_400  # wraps early
    ts = 0xFFFF_0000  # wraps early
    yield ("activate", 0)
    yield ("activate", 1)
    for k in range(1500):
        if k == 40:
            yield ("activate", 2)
        if k == 300:
            yield ("mute", True)
        if k == 340:
            yield ("mute", False)
        if k == 700:
            yield ("restart", None)
            seq, ts = rnd.randrange(65536), rnd.randrange(2**32)
        if k == 900:
            yield ("activate", 3)
        keyframe = video and (k % 97 == 5 or k in (301, 345, 703))
        size = rnd.choice((0, 1, 20, 400, 1100, 1320, 1345))
        payload = vp8_payload(keyframe, size) if video else rnd.randbytes(size)
        step = rnd.choice((1, 1, 1, 1, 2, 0, -3))  # gaps, duplicates, reordering
        seq = (seq + step) & 0xFFFF
        ts = (ts + 3000) & 0xFFFFFFFF
        yield (
            "rtp",
            rtp(
                seq,
                ts,
                payload,
                marker=k % 3 == 0,
                level=None if k % 5 == 0 else rnd.randrange(128),
                csrcs=1 if k % 11 == 0 else 0,
                padding=4 if k % 13 == 0 else 0,
            ),
        )
        if k % 7 == 0:
            yield ("nack", (rnd.randrange(4), rnd.randrange(1, 600)))


def run(factory: Factory, *, video: bool, seed: int) -> list[Any]:
    """Everything observable from forwarding the script on one path."""
    track_cls, output_cls = factory
    random.seed(seed)  # the outputs' random offsets: the same on both paths
    track = track_cls("VP8" if video else "opus", video=video, ext_ids=EXT_IDS)
    outputs = [output_cls(p, f"s{i}", video=video) for i, p in enumerate(outputs_for(video))]
    track.outputs.extend(outputs)
    seen: list[Any] = []
    now = 1000.0
    for kind, arg in script(video, seed):
        now += 0.01
        if kind == "activate":
            outputs[arg].active = True
        elif kind == "mute":
            track.muted = arg
            if arg:
                track.pause_outputs()
        elif kind == "restart":
            track.pause_outputs(rebase_ts=True)
        elif kind == "nack":
            o = outputs[arg[0]]
            seen.append(("rtx", arg[0], o.retransmission((o._next_seq - arg[1]) & 0xFFFF)))
        else:
            out, keyframe = track.route(arg, now)
            seen.append(
                ("route", [(outputs.index(o), pkt) for o, pkt in out], keyframe, track.level)
            )
    for o in outputs:
        seen.append(
            ("counters", o.packets, o.octets, o.last_rtp_ts, o.rtx_sent, o.waiting_keyframe)
        )
    return seen


@pytest.mark.parametrize("video", [False, True], ids=["audio", "vp8"])
@pytest.mark.parametrize("seed", [1, 2])
def test_both_paths_give_identical_packets(video: bool, seed: int) -> None:
    reference = run(PYTHON, video=video, seed=seed)
    native = run(NATIVE, video=video, seed=seed)
    routed = [e for e in reference if e[0] == "route" and e[1]]
    assert len(routed) > 1000  # the script forwards most packets
    assert any(e[0] == "rtx" and e[2] is not None for e in reference)  # RTX answers happen
    assert len(native) == len(reference)
    for i, (a, b) in enumerate(zip(reference, native, strict=True)):
        assert a == b, f"event {i} differs: {a!r} != {b!r}"


# --- sent natively: SRTP + sendmmsg over loopback -----------------------------------


class _Transport:
    """What bind_target reads from an asyncio datagram transport."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def get_extra_info(self, name: str) -> Any:
        return self.sock if name == "socket" else None


def _srtp_pair() -> tuple[Session, Session]:
    """A sender and a receiver session with one key, set up the way aiortc does."""
    key = os.urandom(30)
    sessions = []
    for kind in (Policy.SSRC_ANY_OUTBOUND, Policy.SSRC_ANY_INBOUND):
        policy = Policy(key=key, ssrc_type=kind)
        policy.allow_repeat_tx = True
        policy.window_size = 1024
        sessions.append(Session(policy))
    return sessions[0], sessions[1]


@pytest.fixture
def udp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    send = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    recv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    send.bind(("127.0.0.1", 0))
    recv.bind(("127.0.0.1", 0))
    recv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    recv.settimeout(5)
    yield send, recv
    send.close()
    recv.close()


@pytest.fixture
def bound(udp_pair) -> tuple[Any, socket.socket]:
    """A ready Target sending over ``udp_pair`` (SRTP with a fresh key), and the
    receiving socket."""
    send, recv = udp_pair
    tx, _ = _srtp_pair()
    target = fastpath.new_target()
    assert fastpath.bind_target(target, tx, _Transport(send), recv.getsockname())
    return target, recv


def _tracks(video: bool, target: Any) -> tuple[ForwardingTrack, ForwardingTrack]:
    made = []
    for track_cls, output_cls in (PYTHON, NATIVE):
        random.seed(99)
        track = track_cls("VP8" if video else "opus", video=video, ext_ids=EXT_IDS)
        for i, p in enumerate(outputs_for(video)):
            o = output_cls(p, f"s{i}", video=video)
            o.active = True
            if output_cls is NATIVE[1]:
                o.target = target
            track.outputs.append(o)
        made.append(track)
    return made[0], made[1]


def test_native_send_decrypts_to_the_reference_packets(udp_pair) -> None:
    send, recv = udp_pair
    tx, rx = _srtp_pair()
    target = fastpath.new_target()
    assert fastpath.bind_target(target, tx, _Transport(send), recv.getsockname())
    assert target is not None and target.ready
    reference, native = _tracks(False, target)
    expected: list[bytes] = []
    rnd = random.Random(5)
    for k in range(300):
        data = rtp(
            60_000 + k * 31, k * 960, rnd.randbytes(rnd.choice((0, 50, 1200))), level=k % 128
        )
        out_ref, _ = reference.route(data, 5.0 + k / 50)
        out_nat, _ = native.route(data, 5.0 + k / 50)
        assert out_nat == []  # every output has a ready target: nothing back to Python
        expected += [pkt for _, pkt in out_ref]
    received = [rx.unprotect(recv.recv(4096)) for _ in expected]
    assert received == expected
    assert native.sent_packets == len(expected)
    assert native.sent_octets == sum(map(len, expected))
    assert fastpath.status()["native_packets"] >= len(expected)
    # The session is aiortc's too: its own sends (here an RTX answer) still decrypt.
    o = native.outputs[0]
    answer = o.retransmission((o._next_seq - 1) & 0xFFFF)
    assert answer is not None and struct.unpack_from("!I", answer, 8)[0] == 0xB0000001
    send.sendto(tx.protect(answer), recv.getsockname())
    assert rx.unprotect(recv.recv(4096)) == answer


def test_send_error_hands_packets_back_to_python(udp_pair) -> None:
    send, _ = udp_pair
    tx, _ = _srtp_pair()
    target = fastpath.new_target()
    assert target is not None
    # UDP refuses destination port 0 (EINVAL): the target gives its socket up
    assert fastpath.bind_target(target, tx, _Transport(send), ("127.0.0.1", 0))
    _, native = _tracks(False, target)
    out, _ = native.route(rtp(1, 0, b"x" * 10), 1.0)
    assert out == [] and not target.ready and target.errors >= 1
    assert native.sent_packets == 0
    out, _ = native.route(rtp(2, 960, b"y" * 10), 1.0)
    assert [o.subscriber_id for o, _ in out] == ["s0", "s1", "s2", "s3"]
    assert fastpath.bind_target(target, object(), _Transport(send), ("127.0.0.1", 9)) is False
    assert not target.ready


def test_the_target_keeps_its_own_descriptor(udp_pair) -> None:
    """The event loop may close its socket at any time: the target's duplicate keeps
    naming that socket, never a file that reuses the number."""
    _, recv = udp_pair
    tx, rx = _srtp_pair()
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target = fastpath.new_target()
    assert fastpath.bind_target(target, tx, _Transport(other), recv.getsockname())
    other.close()
    reused = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # likely the same number
    try:
        reference, native = _tracks(False, target)
        data = rtp(5, 0, b"z" * 30)
        expected = [pkt for _, pkt in reference.route(data, 1.0)[0]]
        assert native.route(data, 1.0)[0] == []
        assert [rx.unprotect(recv.recv(4096)) for _ in expected] == expected
    finally:
        reused.close()


def test_a_stream_socket_is_refused(udp_pair) -> None:
    _, recv = udp_pair
    tx, _ = _srtp_pair()
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
        try:
            target = fastpath.new_target()
            assert not fastpath.bind_target(target, tx, _Transport(client), recv.getsockname())
            assert target is not None and not target.ready
            _, native = _tracks(False, target)
            out, _ = native.route(rtp(1, 0, b"x" * 10), 1.0)
            assert len(out) == 4 and native.sent_packets == 0  # all back to Python
            peer.setblocking(False)
            with pytest.raises(BlockingIOError):
                peer.recv(100)
        finally:
            client.close()
            peer.close()


def test_drop_filter_outputs_send_from_python(bound) -> None:
    target, _ = bound
    _, native = _tracks(False, target)
    native.outputs[1].drop_filter = lambda seq: False
    out, _ = native.route(rtp(1, 0, b"x" * 10), 1.0)
    assert [o for o, _ in out] == [native.outputs[1]]
    assert native.sent_packets == 3


# --- fuzzed input --------------------------------------------------------------------


def _fuzzed(rnd: random.Random) -> bytes:
    """Malformed RTP: short headers, CSRC counts and extension lengths past the end,
    zero-length payloads, odd extension elements, random bytes."""
    kind = rnd.randrange(6)
    if kind == 0:
        return rnd.randbytes(rnd.randrange(0, 40))
    b0 = 0x80 | rnd.randrange(16) | (0x10 if rnd.random() < 0.7 else 0) | rnd.choice((0, 0x20))
    head = bytes((b0, rnd.randrange(256))) + rnd.randbytes(10)
    if kind == 1:  # CSRC count past the end
        return head + rnd.randbytes(rnd.randrange(0, 4 * (b0 & 0x0F) + 1))
    csrc = rnd.randbytes(4 * (b0 & 0x0F))
    if not b0 & 0x10:
        return head + csrc + rnd.randbytes(rnd.choice((0, 1, 3, 1400)))
    words = rnd.choice((0, 1, 2, 255, 0xFFFF))
    body = bytes(
        rnd.choice((0x00, 0x60, 0x61, 0x6F, 0xF0, 0x3F, rnd.randrange(256)))
        for _ in range(rnd.randrange(0, 12))
    )
    profile = rnd.choice((b"\xbe\xde", b"\x10\x00", rnd.randbytes(2)))
    ext = profile + struct.pack("!H", words) + body
    if kind == 2:  # extension block cut short
        ext = ext[: rnd.randrange(0, len(ext) + 1)]
    tail = rnd.randbytes(rnd.choice((0, 0, 1, 2, 30, 1350)))
    return head + csrc + ext + tail


def _drain(sock: socket.socket) -> None:
    sock.setblocking(False)
    try:
        while True:
            sock.recv(4096)
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(5)


def _fuzz_tracks(video: bool, target: Any) -> tuple[ForwardingTrack, ForwardingTrack]:
    reference, native = _tracks(video, target)
    for o in (*reference.outputs, *native.outputs):
        o.waiting_keyframe = False
        if video and o.params.ssrc & 1:  # some outputs rewrite VP8 descriptors (simulcast)
            o.rewrite_vp8()
    return reference, native


@pytest.mark.parametrize("video", [False, True], ids=["audio", "vp8"])
def test_fuzzed_rtp_agrees_with_the_reference_and_never_crashes(video: bool, bound) -> None:
    target, recv = bound
    reference, native = _fuzz_tracks(video, None)  # compared packet by packet
    _, sending = _fuzz_tracks(video, target)  # the same input through SRTP + sendmmsg
    rnd = random.Random(1234)
    rejected = 0
    for i in range(FUZZ_ITERATIONS):
        data = _fuzzed(rnd)
        if i % 50 == 0:  # a layer switch: the VP8 fields re-base on the next packet
            for o in (*reference.outputs, *native.outputs, *sending.outputs):
                o.vp8_switch()
        try:
            expected = reference.route(data, 1.0 + i)
        except ValueError:
            with pytest.raises(ValueError):
                native.route(data, 1.0 + i)
            with pytest.raises(ValueError):
                sending.route(data, 1.0 + i)
            rejected += 1
            continue
        got = native.route(data, 1.0 + i)
        assert [(reference.outputs.index(o), p) for o, p in expected[0]] == [
            (native.outputs.index(o), p) for o, p in got[0]
        ], data.hex()
        assert got[1] == expected[1] and native.level == reference.level, data.hex()
        sending.route(data, 1.0 + i)
        _drain(recv)  # keep the receive buffer from filling up
    assert 0 < rejected < FUZZ_ITERATIONS  # both kinds of input were exercised
    for o in (*native.outputs, *sending.outputs):
        for seq in range(0, 65536, 97):
            o.retransmission(seq)


def test_native_route_memory_is_bounded(bound) -> None:
    """No reference is leaked per packet: after the caches fill, memory stays flat."""
    target, recv = bound
    _, native = _fuzz_tracks(False, target)
    native.outputs[1].target = None  # one output's packets come back to Python
    rnd = random.Random(3)
    packets = [rtp(k, k * 960, rnd.randbytes(rnd.randrange(0, 300)), level=1) for k in range(4096)]
    bad = [_fuzzed(rnd) for _ in range(256)]

    def burst() -> None:
        for k, data in enumerate(packets):
            native.route(data, 1.0 + k)
            try:
                native.route(bad[k & 255], 1.0)
            except ValueError:
                pass
            if k % 64 == 0:
                _drain(recv)

    burst()  # fills the NACK caches
    growth = retained_bytes(burst)
    assert growth < 64 * 1024, f"{growth} bytes retained over 3 x 4096 packets"


# --- what the native path relies on ---------------------------------------------------


def test_srtp_protect_has_the_libsrtp_2_signature() -> None:
    """Canary: the C code calls srtp_protect(srtp_t, void *, int *) (libsrtp 2.x);
    fastpath falls back to Python when pylibsrtp ships another one."""
    from pylibsrtp._binding import ffi, lib

    assert ffi.typeof(ffi.addressof(lib, "srtp_protect")).cname == fastpath.SRTP_PROTECT_TYPE


@pytest.mark.parametrize(("spec", "name"), fastpath.PRIVATE_NAMES)
def test_pylibsrtp_private_names_exist(spec: str, name: str) -> None:
    """Canary: the pylibsrtp internals bind_target reads (pin: pylibsrtp 1.0.0)."""
    if spec.endswith("()"):
        module, _, cls = spec[:-2].rpartition(".")
        obj: Any = getattr(importlib.import_module(module), cls)()
    else:
        obj = importlib.import_module(spec)
    assert hasattr(obj, name), f"{spec}.{name} is gone: see mediaserver/sfu/fastpath.py"


def test_the_loaded_extension_is_the_requested_build() -> None:
    """Under ``make asan`` the sanitizer build is the one exercised."""
    wanted = os.environ.get("FASTPATH_SO")
    module = importlib.import_module("mediaserver.sfu._fastpath")
    if wanted:
        assert os.path.samefile(str(module.__file__), wanted)
    assert fastpath.route_function() is module.route


@pytest.mark.parametrize(("value", "path"), [("1", "python"), ("0", "native"), ("", "native")])
def test_environment_variable_forces_the_python_path(value: str, path: str) -> None:
    code = "from mediaserver.sfu import fastpath; print(fastpath.PATH, fastpath.REASON)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIASERVER_")}
    env[fastpath.ENV_PURE_PYTHON] = value
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.split()[0] == path, out
