"""API keys, join and room tokens, link slugs: generation and constant-time checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "ROOM_ROLES",
    "ExpiredToken",
    "InvalidToken",
    "JoinClaims",
    "RoomClaims",
    "hash_secret",
    "load_token_secret",
    "mint_room_token",
    "new_api_key",
    "new_id",
    "new_slug",
    "parse_api_key",
    "sign_join_token",
    "sign_room_token",
    "verify_join_token",
    "verify_room_token",
    "verify_secret",
]

KEY_PREFIX = "msk"
#: Token kinds (the first dot-separated part, covered by the MAC).
JOIN_TOKEN_KIND = "mjt1"
ROOM_TOKEN_KIND = "mrt1"
ROOM_ROLES = ("host", "member", "guest")


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
    """A join or room token that is malformed, tampered with, expired or for another
    link or room."""


class ExpiredToken(InvalidToken):
    """A well-formed, correctly signed token whose expiry has passed."""


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


def _sign(secret: bytes, kind: str, claims: dict[str, Any]) -> str:
    """``<kind>.<payload>.<mac>``: the MAC covers the kind, so one token type can never
    pass for another although both are signed with the same key."""
    body = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()
    payload = _b64(body)
    mac = hmac.new(secret, f"{kind}.{payload}".encode(), hashlib.sha256).digest()
    return f"{kind}.{payload}.{_b64(mac)}"


def _verify(secret: bytes, kind: str, token: str) -> dict[str, Any]:
    """The claims of a token of this kind with a good signature (constant-time check);
    raises InvalidToken. Expiry and the claims' meaning are the caller's."""
    if not isinstance(token, str) or len(token) > 2048:
        raise InvalidToken("malformed token")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != kind:
        raise InvalidToken("malformed token")
    try:
        mac = _unb64(parts[2])
    except (ValueError, TypeError):
        raise InvalidToken("malformed token") from None
    expected = hmac.new(secret, f"{kind}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise InvalidToken("bad signature")
    try:
        data = json.loads(_unb64(parts[1]))
    except ValueError:
        raise InvalidToken("malformed token") from None
    if not isinstance(data, dict):
        raise InvalidToken("malformed token")
    return data


#: Claim attribute -> key in the token body (``v`` is the format version, always 1).
_JOIN_KEYS = {
    "link_id": "lid",
    "user_id": "sub",
    "name": "name",
    "role": "role",
    "expires_at": "exp",
    "token_id": "jti",
}
_ROOM_KEYS = {
    "room": "rid",
    "tenant_id": "ten",
    **{k: v for k, v in _JOIN_KEYS.items() if k != "link_id"},
}


def _body(claims: JoinClaims | RoomClaims, keys: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {key: getattr(claims, attr) for attr, key in keys.items()}
    out["exp"] = int(claims.expires_at)
    out["v"] = 1
    return out


def _claims(data: dict[str, Any], keys: dict[str, str]) -> dict[str, Any]:
    """Claim attributes from a verified body (expiry a number, the rest strings)."""
    try:
        return {
            attr: float(data[key]) if attr == "expires_at" else str(data[key])
            for attr, key in keys.items()
        }
    except (ValueError, KeyError, TypeError):
        raise InvalidToken("malformed token") from None


def _check_expiry(expires_at: float, now: float | None) -> None:
    if expires_at < (time.time() if now is None else now):
        raise ExpiredToken("token expired")


def sign_join_token(secret: bytes, claims: JoinClaims) -> str:
    return _sign(secret, JOIN_TOKEN_KIND, _body(claims, _JOIN_KEYS))


def verify_join_token(
    secret: bytes, token: str, *, link_id: str, now: float | None = None
) -> JoinClaims:
    """Check signature (constant time), expiry and the link; raise InvalidToken."""
    claims = JoinClaims(**_claims(_verify(secret, JOIN_TOKEN_KIND, token), _JOIN_KEYS))
    _check_expiry(claims.expires_at, now)
    if not hmac.compare_digest(claims.link_id.encode(), link_id.encode()):
        raise InvalidToken("token is for another link")
    if claims.role not in ("host", "member"):
        raise InvalidToken("bad role")
    return claims


# --- room tokens: joining an ad-hoc room by id (docs/protocol.md §4) ------------------


@dataclass(frozen=True)
class RoomClaims:
    """What a room token grants: joining ``room`` (of ``tenant_id``'s namespace when
    minted through the link API, of the operator's when ``tenant_id`` is empty) as
    ``user_id`` named ``name`` with ``role``, until ``expires_at``."""

    room: str
    tenant_id: str
    user_id: str
    name: str
    role: str  # host | member | guest
    expires_at: float
    token_id: str

    @property
    def room_id(self) -> str:
        """The server's id for the room: tenants' rooms never meet each other's or the
        operator's (``/`` cannot appear in a room name a client sends)."""
        return f"{self.tenant_id}/{self.room}" if self.tenant_id else self.room


def sign_room_token(secret: bytes, claims: RoomClaims) -> str:
    return _sign(secret, ROOM_TOKEN_KIND, _body(claims, _ROOM_KEYS))


def mint_room_token(
    secret: bytes,
    room: str,
    name: str,
    *,
    role: str = "member",
    user_id: str | None = None,
    tenant_id: str = "",
    ttl_seconds: float = 600.0,
    now: float | None = None,
) -> tuple[str, RoomClaims]:
    """A new room token (the CLI, the link API, the tests and the load bots use this)."""
    if role not in ROOM_ROLES:
        raise ValueError(f"role must be one of {', '.join(ROOM_ROLES)}, not {role!r}")
    claims = RoomClaims(
        room=room,
        tenant_id=tenant_id,
        user_id=user_id or name,
        name=name,
        role=role,
        expires_at=float(int((time.time() if now is None else now) + ttl_seconds)),
        token_id=secrets.token_urlsafe(9),
    )
    return sign_room_token(secret, claims), claims


def verify_room_token(
    secret: bytes, token: str, *, room: str, now: float | None = None
) -> RoomClaims:
    """Check signature (constant time), the room, the role and expiry; raise
    InvalidToken (ExpiredToken when only the expiry is wrong)."""
    claims = RoomClaims(**_claims(_verify(secret, ROOM_TOKEN_KIND, token), _ROOM_KEYS))
    if not hmac.compare_digest(claims.room.encode(), room.encode()):
        raise InvalidToken("token is for another room")
    if claims.role not in ROOM_ROLES:
        raise InvalidToken("bad role")
    if not claims.name.strip() or not claims.user_id:
        raise InvalidToken("malformed token")
    _check_expiry(claims.expires_at, now)
    return claims


class SecretStore(Protocol):
    async def get_or_create_secret(self, name: str, candidate: str) -> str: ...


async def load_token_secret(configured: str, store: SecretStore) -> bytes:
    """The one key that signs join and room tokens: ``linkapi.token_secret``, or else a
    random key generated once and kept in the store (shared by every node using it)."""
    secret = configured or await store.get_or_create_secret(
        "join_token_secret", secrets.token_urlsafe(48)
    )
    return secret.encode()
