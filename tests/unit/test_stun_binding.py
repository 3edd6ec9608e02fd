"""The fast answer to ICE checks (mediaserver/sfu/stun_binding.py) against aioice's own
STUN messages: what it accepts, what it leaves to aioice, and that aioice reads its
responses as its own."""

from __future__ import annotations

import pytest
from aioice import stun

from mediaserver.sfu import stun_binding

PASSWORD = b"0123456789abcdefghijkl"
USERNAME = "serverufragserverufrag:cli1"


def _request(
    *,
    key: bytes = PASSWORD,
    username: str = USERNAME,
    role: str | None = "ICE-CONTROLLING",
    use_candidate: bool = False,
    fingerprint: bool = True,
    extra: dict[str, object] | None = None,
) -> stun.Message:
    m = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    m.attributes["USERNAME"] = username
    m.attributes["PRIORITY"] = 1853817087
    if role is not None:
        m.attributes[role] = 0x1234567890ABCDEF
    if use_candidate:
        m.attributes["USE-CANDIDATE"] = None
    for name, value in (extra or {}).items():
        m.attributes[name] = value
    m.add_message_integrity(key)  # aioice adds the FINGERPRINT with it
    if not fingerprint:
        m.attributes.pop("FINGERPRINT")
    return m


@pytest.mark.parametrize("fingerprint", [True, False])
@pytest.mark.parametrize(
    ("role", "controlling"), [("ICE-CONTROLLING", True), ("ICE-CONTROLLED", False), (None, None)]
)
def test_a_check_is_read_as_aioice_wrote_it(fingerprint, role, controlling):
    m = _request(role=role, fingerprint=fingerprint)
    data = bytes(m)
    check = stun_binding.parse_check(data)
    assert check is not None
    assert check.transaction_id == m.transaction_id
    assert check.username == USERNAME.encode()
    assert check.controlling is controlling
    assert not check.use_candidate
    assert stun_binding.integrity_ok(data, check, PASSWORD)
    assert not stun_binding.integrity_ok(data, check, b"another password")


def test_use_candidate_is_reported():
    check = stun_binding.parse_check(bytes(_request(use_candidate=True)))
    assert check is not None and check.use_candidate


@pytest.mark.parametrize(
    "addr", [("192.0.2.10", 50000), ("10.77.0.2", 1), ("2001:db8::17", 65535), ("::1", 9)]
)
def test_aioice_reads_the_response_as_its_own(addr):
    m = _request()
    response = stun_binding.success_response(m.transaction_id, addr, PASSWORD)
    parsed = stun.parse_message(response)  # checks the FINGERPRINT
    assert parsed.check_message_integrity(PASSWORD)
    assert parsed.message_method == stun.Method.BINDING
    assert parsed.message_class == stun.Class.RESPONSE
    assert parsed.transaction_id == m.transaction_id
    assert parsed.attributes["XOR-MAPPED-ADDRESS"] == addr
    # byte for byte what aioice's agent sends (Connection.request_received)
    expected = stun.Message(
        message_method=stun.Method.BINDING,
        message_class=stun.Class.RESPONSE,
        transaction_id=m.transaction_id,
    )
    expected.attributes["XOR-MAPPED-ADDRESS"] = addr
    expected.add_message_integrity(PASSWORD)
    assert response == bytes(expected)


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def test_tampering_is_caught():
    data = bytes(_request())
    check = stun_binding.parse_check(data)
    assert check is not None
    # a changed attribute value: the FINGERPRINT no longer matches
    assert stun_binding.parse_check(_flip(data, 30)) is None
    # without a FINGERPRINT, the MESSAGE-INTEGRITY catches it
    bare = bytes(_request(fingerprint=False))
    changed = _flip(bare, 30)
    check = stun_binding.parse_check(changed)
    assert check is not None and not stun_binding.integrity_ok(changed, check, PASSWORD)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x01",
        bytes(20),  # no cookie
        # a response, an indication
        bytes(stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.RESPONSE)),
        bytes(
            stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.INDICATION)
        ),
        # another method (TURN Allocate)
        bytes(stun.Message(message_method=stun.Method.ALLOCATE, message_class=stun.Class.REQUEST)),
        # no USERNAME / no MESSAGE-INTEGRITY
        bytes(stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)),
    ],
)
def test_what_is_not_a_plain_check_is_left_to_aioice(data):
    assert stun_binding.parse_check(data) is None


def test_malformed_lengths_are_left_to_aioice():
    data = bytes(_request())
    assert stun_binding.parse_check(data[:-4]) is None  # header length says more
    assert stun_binding.parse_check(data + bytes(4)) is None
    # an attribute whose length runs past the end
    broken = data[:22] + (0xFFFF).to_bytes(2, "big") + data[24:]
    assert stun_binding.parse_check(broken) is None


def test_an_unknown_comprehension_required_attribute_is_left_to_aioice():
    # REALM (0x0014) is comprehension-required and not part of an ICE check
    m = _request(extra={"REALM": "example.org"})
    assert stun_binding.parse_check(bytes(m)) is None
    # comprehension-optional attributes (SOFTWARE, 0x8022) are ignored
    m = _request(extra={"SOFTWARE": "libjingle"})
    assert stun_binding.parse_check(bytes(m)) is not None


def test_only_a_fingerprint_may_follow_the_integrity():
    data = bytes(_request(fingerprint=False))
    # SOFTWARE after MESSAGE-INTEGRITY (length fixed up): refused
    software = (0x8022).to_bytes(2, "big") + (4).to_bytes(2, "big") + b"abcd"
    tail = data + software
    tail = tail[:2] + (len(tail) - 20).to_bytes(2, "big") + tail[4:]
    assert stun_binding.parse_check(tail) is None
