"""Participant keys: a server-signed, per-meeting client id that a page or SDK keeps and
presents again on ``join``, so that a removal holds against the same client rejoining.

    pk1.<base64url(room id "|" client id)>.<base64url(HMAC-SHA256)>

The HMAC key is the server's join-token secret (``linkapi.token_secret``, else the one
kept in the store), so every node of a cluster accepts the keys of the others; the MAC
covers a purpose prefix, so a key is never mistaken for a join token. Pure, no IO.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

__all__ = ["MAX_KEY_CHARS", "issue_key", "new_client_id", "read_key"]

PREFIX = "pk1"
MAX_KEY_CHARS = 256


def new_client_id() -> str:
    return secrets.token_urlsafe(12)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _mac(secret: bytes, payload: str) -> bytes:
    return hmac.new(secret, f"{PREFIX}.{payload}".encode(), hashlib.sha256).digest()


def issue_key(secret: bytes, room_id: str, client_id: str) -> str:
    payload = _b64(f"{room_id}|{client_id}".encode())
    return f"{PREFIX}.{payload}.{_b64(_mac(secret, payload))}"


def read_key(secret: bytes, room_id: str, key: str) -> str | None:
    """The client id of a genuine key for ``room_id`` (constant-time MAC check); None for
    anything else (malformed, forged, or issued for another meeting)."""
    parts = key.split(".")
    if len(key) > MAX_KEY_CHARS or len(parts) != 3 or parts[0] != PREFIX:
        return None
    try:
        mac = base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4))
        body = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if not hmac.compare_digest(mac, _mac(secret, parts[1])):
        return None
    room, sep, client_id = body.rpartition("|")
    if not sep or not client_id or not hmac.compare_digest(room.encode(), room_id.encode()):
        return None
    return client_id
