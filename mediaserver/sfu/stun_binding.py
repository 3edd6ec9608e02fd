"""ICE checks on an established pair answered without aioice's message objects.

A connected peer keeps sending STUN Binding requests on its selected pair: consent
checks (RFC 7675; every ~5 s from aioice, every ~2.5 s from browsers). aioice parses
each one into a ``Message`` (twice on the shared media port: once to route it, once in
the agent), checks its integrity twice, builds the response through ``ipaddress`` and
answers: a few hundred microseconds of Python per check and connection. These pure
functions do what such a check needs with ``struct``, ``hmac`` and ``zlib``:

- :func:`parse_check`: a well-formed Binding request (RFC 8489 section 5, 14) with
  USERNAME and MESSAGE-INTEGRITY, a correct FINGERPRINT if it has one, and no
  comprehension-required attribute other than the ICE ones (RFC 8445 section 7.1.1);
  anything else is None, and the caller hands the datagram to aioice as before;
- :func:`integrity_ok`: its MESSAGE-INTEGRITY (HMAC-SHA1 with the short-term password),
  compared in constant time;
- :func:`success_response`: the Binding success response aioice sends (XOR-MAPPED-
  ADDRESS, MESSAGE-INTEGRITY, FINGERPRINT).

Which checks may take this path (an established pair, no nomination, no role conflict)
is the ICE agent's decision: :func:`mediaserver.sfu.ice_sockets.answer_check`.
"""

from __future__ import annotations

import hmac
import socket
import struct
import zlib
from dataclasses import dataclass

__all__ = ["Check", "integrity_ok", "parse_check", "success_response"]

COOKIE = 0x2112A442
_COOKIE = COOKIE.to_bytes(4, "big")
BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
USERNAME = 0x0006
MESSAGE_INTEGRITY = 0x0008
XOR_MAPPED_ADDRESS = 0x0020
PRIORITY = 0x0024
USE_CANDIDATE = 0x0025
FINGERPRINT = 0x8028
ICE_CONTROLLED = 0x8029
ICE_CONTROLLING = 0x802A
FINGERPRINT_XOR = 0x5354554E
#: comprehension-required attributes (type < 0x8000) a check may carry
_REQUIRED_KNOWN = frozenset({USERNAME, MESSAGE_INTEGRITY, PRIORITY, USE_CANDIDATE})
_pair = struct.Struct("!HH")
_u32 = struct.Struct("!I")


@dataclass(frozen=True, slots=True)
class Check:
    transaction_id: bytes
    username: bytes
    #: offset of the MESSAGE-INTEGRITY attribute, and its HMAC
    integrity_at: int
    integrity: bytes
    use_candidate: bool
    #: ICE-CONTROLLING: True, ICE-CONTROLLED: False, neither: None
    controlling: bool | None


def _with_length(head: bytes, length: int) -> bytes:
    return head[:2] + length.to_bytes(2, "big") + head[4:]


def parse_check(data: bytes) -> Check | None:
    """The check in ``data``, or None if it is not a plain, well-formed one."""
    size = len(data)
    if size < 20 or size & 3:
        return None
    mtype, length = _pair.unpack_from(data, 0)
    if mtype != BINDING_REQUEST or length + 20 != size or data[4:8] != _COOKIE:
        return None
    pos = 20
    username: bytes | None = None
    integrity_at = -1
    use_candidate = False
    controlling: bool | None = None
    while pos < size:
        if pos + 4 > size:
            return None
        atype, alen = _pair.unpack_from(data, pos)
        end = pos + 4 + alen
        if end > size:
            return None
        if integrity_at >= 0 and atype != FINGERPRINT:
            return None  # only FINGERPRINT may follow MESSAGE-INTEGRITY
        if atype == USERNAME:
            username = data[pos + 4 : end]
        elif atype == MESSAGE_INTEGRITY:
            if alen != 20:
                return None
            integrity_at = pos
        elif atype == FINGERPRINT:
            if alen != 4 or end != size:
                return None
            crc = zlib.crc32(_with_length(data[:pos], end - 20)) ^ FINGERPRINT_XOR
            if _u32.unpack_from(data, pos + 4)[0] != crc:
                return None
        elif atype == USE_CANDIDATE:
            use_candidate = True
        elif atype == ICE_CONTROLLING:
            controlling = True
        elif atype == ICE_CONTROLLED:
            controlling = False
        elif atype < 0x8000 and atype not in _REQUIRED_KNOWN:
            return None
        pos = end + (-alen & 3)
    if pos != size or username is None or integrity_at < 0:
        return None
    return Check(
        transaction_id=data[8:20],
        username=username,
        integrity_at=integrity_at,
        integrity=data[integrity_at + 4 : integrity_at + 24],
        use_candidate=use_candidate,
        controlling=controlling,
    )


def integrity_ok(data: bytes, check: Check, key: bytes) -> bool:
    """Whether the check's MESSAGE-INTEGRITY is right for ``key`` (constant time)."""
    signed = _with_length(data[: check.integrity_at], check.integrity_at + 24 - 20)
    return hmac.compare_digest(hmac.digest(key, signed, "sha1"), check.integrity)


def success_response(transaction_id: bytes, addr: tuple[str, int], key: bytes) -> bytes:
    """The Binding success response to a check from ``addr``, signed with ``key``."""
    host, port = addr[0], addr[1]
    if ":" in host:
        family, packed, pad = 2, socket.inet_pton(socket.AF_INET6, host), _COOKIE + transaction_id
    else:
        family, packed, pad = 1, socket.inet_pton(socket.AF_INET, host), _COOKIE
    xored = bytes(a ^ b for a, b in zip(packed, pad, strict=True))
    value = struct.pack("!BBH", 0, family, port ^ (COOKIE >> 16)) + xored
    attrs = _pair.pack(XOR_MAPPED_ADDRESS, len(value)) + value
    head = _pair.pack(BINDING_SUCCESS, len(attrs) + 24) + _COOKIE + transaction_id
    signed = head + attrs
    message = signed + _pair.pack(MESSAGE_INTEGRITY, 20) + hmac.digest(key, signed, "sha1")
    message = _with_length(message, len(message) - 20 + 8)
    crc = zlib.crc32(message) ^ FINGERPRINT_XOR
    return message + _pair.pack(FINGERPRINT, 4) + _u32.pack(crc)
