"""API keys, join tokens and link slugs: generation and constant-time checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

__all__ = [
    "InvalidToken",
    "JoinClaims",
    "hash_secret",
    "new_api_key",
    "new_id",
    "new_slug",
    "parse_api_key",
    "sign_join_token",
    "verify_join_token",
    "verify_secret",
]

KEY_PREFIX = "msk"


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(12)}"


def new_slug() -> str:
    """A link slug: 160 random bits, URL-safe (27 characters)."""
    return secrets.token_urlsafe(20)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def verify_secret(secret: str, expected_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), expected_hash)


def new_api_key() -> tuple[str, str, str]:
    """(key_id, secret, full key). The full key is shown once; only the hash is kept."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return key_id, secret, f"{KEY_PREFIX}_{key_id}_{secret}"


def parse_api_key(full: str) -> tuple[str, str] | None:
    parts = full.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 16:
        return None
    return parts[1], parts[2]


class InvalidToken(Exception):
    """A join token that is malformed, tampered with, expired or for another link."""


@dataclass(frozen=True)
class JoinClaims:
    link_id: str
    user_id: str
    name: str
    role: str  # host | member
    expires_at: float
    token_id: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_join_token(secret: bytes, claims: JoinClaims) -> str:
    body = json.dumps(
        {
            "lid": claims.link_id,
            "sub": claims.user_id,
            "name": claims.name,
            "role": claims.role,
            "exp": int(claims.expires_at),
            "jti": claims.token_id,
            "v": 1,
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    payload = _b64(body)
    mac = hmac.new(secret, b"mjt1." + payload.encode(), hashlib.sha256).digest()
    return f"mjt1.{payload}.{_b64(mac)}"


def verify_join_token(
    secret: bytes, token: str, *, link_id: str, now: float | None = None
) -> JoinClaims:
    """Check signature (constant time), expiry and the link; raise InvalidToken."""
    if not isinstance(token, str) or len(token) > 2048:
        raise InvalidToken("malformed token")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != "mjt1":
        raise InvalidToken("malformed token")
    try:
        mac = _unb64(parts[2])
    except (ValueError, TypeError):
        raise InvalidToken("malformed token") from None
    expected = hmac.new(secret, b"mjt1." + parts[1].encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise InvalidToken("bad signature")
    try:
        data: dict[str, Any] = json.loads(_unb64(parts[1]))
        claims = JoinClaims(
            link_id=str(data["lid"]),
            user_id=str(data["sub"]),
            name=str(data["name"]),
            role=str(data["role"]),
            expires_at=float(data["exp"]),
            token_id=str(data["jti"]),
        )
    except (ValueError, KeyError, TypeError):
        raise InvalidToken("malformed token") from None
    if claims.expires_at < (time.time() if now is None else now):
        raise InvalidToken("token expired")
    if not hmac.compare_digest(claims.link_id.encode(), link_id.encode()):
        raise InvalidToken("token is for another link")
    if claims.role not in ("host", "member"):
        raise InvalidToken("bad role")
    return claims
