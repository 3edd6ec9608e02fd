"""Native SRTP for the AES-GCM profiles (csrc/aead.c) against libsrtp (pylibsrtp), byte
for byte: keys derived the same way, the same packet indexes across sequence number
wraps, repeats and reordering, the same refusals."""

from __future__ import annotations

import os
import random
import struct
import subprocess
import sys

import pytest
from pylibsrtp import Error, Policy, Session

from mediaserver.sfu import fastpath

pytestmark = pytest.mark.skipif(
    fastpath.PATH != "native" or not fastpath.NATIVE_SRTP,
    reason=f"native SRTP not active: {fastpath.REASON} / {fastpath.NATIVE_SRTP_REASON}",
)

PROFILES = {
    "aes-128-gcm": (Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 28),
    "aes-256-gcm": (Policy.SRTP_PROFILE_AEAD_AES_256_GCM, 44),
}


def _pair(profile: int, key: bytes) -> tuple[object, Session]:
    """A native target and libsrtp's session as aiortc sets it up, with one key."""
    policy = Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile)
    policy.allow_repeat_tx = True
    policy.window_size = 1024
    target = fastpath.new_target()
    assert target is not None
    target.set_aead(key)
    assert target.aead
    return target, Session(policy)


def _packet(rnd: random.Random, seq: int, ssrc: int) -> bytes:
    cc = rnd.choice((0, 0, 0, 1, 3))
    ext = rnd.random() < 0.7
    b0 = 0x80 | cc | (0x10 if ext else 0)
    head = struct.pack(
        "!BBHII", b0, rnd.choice((96, 111, 0xE0)), seq & 0xFFFF, rnd.getrandbits(32), ssrc
    )
    head += rnd.randbytes(4 * cc)
    if ext:
        words = rnd.choice((1, 2, 3))
        head += struct.pack("!HH", 0xBEDE, words) + rnd.randbytes(4 * words)
    return head + rnd.randbytes(rnd.choice((0, 1, 17, 160, 1100)))


_outcomes = {"same": 0, "both refused": 0}


def _same(target: object, ref: Session, data: bytes) -> bytes | None:
    """Both protect ``data`` identically, or both refuse it."""
    try:
        expected: bytes | None = ref.protect(data)
    except Error:
        expected = None
    _outcomes["same" if expected is not None else "both refused"] += 1
    if expected is None:
        with pytest.raises(ValueError):
            target.protect_rtp(data)  # type: ignore[attr-defined]
        return None
    assert target.protect_rtp(data) == expected  # type: ignore[attr-defined]
    return expected


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_identical_to_libsrtp_across_wraps_repeats_and_reordering(name: str) -> None:
    profile, key_len = PROFILES[name]
    rnd = random.Random(name)
    target, ref = _pair(profile, rnd.randbytes(key_len))
    ssrcs = [rnd.getrandbits(32) for _ in range(5)]
    seqs = {s: rnd.choice((0, 1000, 0x7FF0, 0xFF00)) for s in ssrcs}
    sent: dict[int, list[bytes]] = {s: [] for s in ssrcs}
    _outcomes.update({"same": 0, "both refused": 0})
    for k in range(150_000):
        ssrc = ssrcs[k % len(ssrcs)] if k < 20_000 else ssrcs[0]  # then one SSRC wraps twice
        r = rnd.random()
        if r < 0.02 and sent[ssrc]:  # a retransmission: the same index again, or too old
            # (within 0x8000 of the newest: SRTP would take an older one for a future one)
            _same(target, ref, rnd.choice(sent[ssrc][-1500:]))
            continue
        step = 1 if r < 0.97 else rnd.choice((-3, -1, 2, 50, 900))
        seqs[ssrc] = (seqs[ssrc] + step) & 0xFFFF
        data = _packet(rnd, seqs[ssrc], ssrc)
        _same(target, ref, data)
        sent[ssrc].append(data)
        del sent[ssrc][:-2000]
    # repeats, reordering and jumps within the window were protected, older ones refused
    assert _outcomes["same"] > 140_000 and _outcomes["both refused"] > 100, _outcomes


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_a_receiver_decrypts_and_a_tampered_packet_fails(name: str) -> None:
    profile, key_len = PROFILES[name]
    key = os.urandom(key_len)
    target, _ = _pair(profile, key)
    policy = Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND, srtp_profile=profile)
    rx = Session(policy)
    clear = struct.pack("!BBHII", 0x80, 96, 1, 2, 3) + b"payload"
    protected = target.protect_rtp(clear)  # type: ignore[attr-defined]
    assert len(protected) == len(clear) + 16
    assert rx.unprotect(protected) == clear
    tampered = bytearray(target.protect_rtp(struct.pack("!BBHII", 0x80, 96, 2, 2, 3) + b"x"))  # type: ignore[attr-defined]
    tampered[13] ^= 1
    with pytest.raises(Error):
        rx.unprotect(bytes(tampered))


def test_the_same_keys_keep_the_state_and_new_keys_restart() -> None:
    key = os.urandom(28)
    profile = Policy.SRTP_PROFILE_AEAD_AES_128_GCM
    target, ref = _pair(profile, key)
    for seq in range(0xFFF0, 0x10000):
        _same(target, ref, struct.pack("!BBHII", 0x80, 96, seq, 0, 9) + b"x")
    target.set_aead(bytes(key))  # type: ignore[attr-defined]  # again (a new ICE pair)
    wrapped = struct.pack("!BBHII", 0x80, 96, 3, 0, 9) + b"y"
    assert _same(target, ref, wrapped) is not None  # ROC 1: the state was kept
    other = os.urandom(28)
    target.set_aead(other)  # type: ignore[attr-defined]
    _, fresh = _pair(profile, other)
    assert target.protect_rtp(wrapped) == fresh.protect(wrapped)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80\x60\x00\x01",
        struct.pack("!BBHII", 0x8F, 96, 1, 0, 1) + bytes(8),  # 15 CSRCs, 2 present
        struct.pack("!BBHII", 0x90, 96, 1, 0, 1) + b"\xbe\xde",  # extension header cut
        struct.pack("!BBHII", 0x90, 96, 1, 0, 1) + b"\xbe\xde\xff\xff" + bytes(8),
    ],
)
def test_malformed_packets_are_refused(data: bytes) -> None:
    target, ref = _pair(Policy.SRTP_PROFILE_AEAD_AES_128_GCM, os.urandom(28))
    with pytest.raises(ValueError):
        target.protect_rtp(data)  # type: ignore[attr-defined]
    with pytest.raises(Error):
        ref.protect(data)


@pytest.mark.parametrize("key", [b"", bytes(16), bytes(30), bytes(46)])
def test_key_lengths_other_than_aead_are_refused(key: bytes) -> None:
    target = fastpath.new_target()
    assert target is not None
    with pytest.raises(ValueError):
        target.set_aead(key)
    assert not target.aead


def test_fuzzed_packets_agree_with_libsrtp() -> None:
    """Random and malformed headers (CSRC counts and extension lengths past the end,
    empty payloads): protected identically or refused by both; nothing else happens
    (``make asan`` runs this under AddressSanitizer)."""
    rnd = random.Random(7)
    target, ref = _pair(Policy.SRTP_PROFILE_AEAD_AES_128_GCM, rnd.randbytes(28))
    iterations = int(os.environ.get("FASTPATH_FUZZ_ITERATIONS", "5000"))
    for k in range(iterations):
        size = rnd.choice((0, 1, 11, 12, 13, 16, 20, 40, 200, 1300))
        data = bytearray(rnd.randbytes(size))
        if size >= 12:
            data[0] = 0x80 | (data[0] & 0x1F)  # version 2 (libsrtp checks nothing else)
            data[2:4] = struct.pack("!H", k & 0xFFFF)
            data[8:12] = struct.pack("!I", k % 3)
        _same(target, ref, bytes(data))


@pytest.mark.parametrize(("value", "native"), [("0", False), ("1", True), ("", True)])
def test_environment_variable_keeps_libsrtp(value: str, native: bool) -> None:
    code = (
        "from mediaserver.sfu import fastpath as f; "
        "print(f.NATIVE_SRTP, f.status()['srtp_protect'], f.NATIVE_SRTP_REASON or '-')"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIASERVER_")}
    env[fastpath.ENV_NATIVE_SRTP] = value
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[:2] == ([str(native), "native-aead"] if native else [str(native), "libsrtp"])
