"""Pure helpers for account secrets: argon2id password hashes, opaque tokens stored by
their SHA-256, constant-time comparison, and the PKCE S256 check (RFC 7636 §4.6)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = [
    "hash_password",
    "hash_token",
    "new_token",
    "pkce_s256",
    "same",
    "valid_verifier",
    "verify_password",
]

_HASHER = PasswordHasher()  # argon2id, the library's (RFC 9106) parameters
# verified against when the account does not exist: the same work either way
_DUMMY = _HASHER.hash(secrets.token_urlsafe(16))
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def hash_password(password: str) -> str:
    """An argon2id hash (PHC string ``$argon2id$v=19$...``)."""
    return _HASHER.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Constant work whether or not there is a hash to check against."""
    try:
        return _HASHER.verify(password_hash or _DUMMY, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_token(prefix: str) -> str:
    """An opaque secret: ``<prefix>_`` and 256 random bits."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def hash_token(token: str) -> str:
    """What is stored of a token: hex SHA-256 (tokens are random, no salt needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def valid_verifier(verifier: str) -> bool:
    """RFC 7636 §4.1: 43 to 128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"."""
    return _VERIFIER.fullmatch(verifier) is not None


def pkce_s256(verifier: str) -> str:
    """BASE64URL(SHA256(ASCII(code_verifier))) without padding (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
