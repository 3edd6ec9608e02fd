"""Member accounts and OAuth records, and the ``AccountStore`` contract over them.

Kept apart from ``Store`` (store.py): an ``AccountStore`` is built on an open ``Store``
and shares its connection (``account_store(store)``): SQLite tables of their own
(accounts_sqlite.py), Redis keys under the store's prefix (accounts_redis.py).

Secrets handed out (set-password links, session ids, authorization codes, access and
refresh tokens) are stored only as the SHA-256 of the secret (``Credential.hash``);
passwords only as argon2id hashes (``Member.password_hash``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from .models import to_dict
from .store import Store

__all__ = [
    "CREDENTIAL_KINDS",
    "AccountStore",
    "Credential",
    "Grant",
    "Member",
    "OAuthClient",
    "account_store",
    "dump_record",
    "load_record",
]

T = TypeVar("T")

#: password_link: a one-time set-password link; session: a signed-in browser;
#: code: an authorization code; access / refresh: OAuth tokens.
CREDENTIAL_KINDS = ("password_link", "session", "code", "access", "refresh")


@dataclass(frozen=True)
class Member:
    """A person of a tenant with an account on this server."""

    id: str  # "usr_..."
    tenant_id: str
    email: str  # normalised (stripped, lower-case); unique on the server
    name: str
    created_at: float
    password_hash: str | None = None  # argon2id; None until the set-password link is used
    password_set_at: float | None = None
    disabled_at: float | None = None


@dataclass(frozen=True)
class Credential:
    """A secret handed out once, stored by the SHA-256 of the secret."""

    hash: str
    kind: str  # one of CREDENTIAL_KINDS
    member_id: str
    tenant_id: str
    created_at: float
    expires_at: float
    grant_id: str | None = None
    used_at: float | None = None  # single-use kinds: when it was used (first time)
    revoked_at: float | None = None
    data: dict[str, Any] = field(default_factory=dict)  # kind-specific


@dataclass(frozen=True)
class OAuthClient:
    """A calendar product registered by the operator."""

    id: str  # "cl_..."
    name: str
    redirect_uris: tuple[str, ...]  # compared exactly
    confidential: bool
    secret_hash: str | None  # SHA-256 of the client secret (confidential clients)
    created_at: float


@dataclass(frozen=True)
class Grant:
    """A member's connection to a client: every token of it dies with it."""

    id: str  # "gr_..."
    client_id: str
    member_id: str
    tenant_id: str
    scope: tuple[str, ...]
    created_at: float
    revoked_at: float | None = None
    revoked_reason: str | None = None


_TUPLES = frozenset({"redirect_uris", "scope"})


def dump_record(obj: Any) -> str:
    return json.dumps(to_dict(obj), separators=(",", ":"), sort_keys=True)


def load_record(cls: type[T], raw: str) -> T:
    data = json.loads(raw)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs = {
        k: tuple(v) if k in _TUPLES and isinstance(v, list) else v
        for k, v in data.items()
        if k in names
    }
    return cls(**kwargs)


class AccountStore(Protocol):
    """Every method is atomic on its own and durable when it returns (as ``Store``)."""

    # --- members ------------------------------------------------------------------
    async def add_member(self, member: Member) -> None:
        """Raises ConflictError if the id or the email exists."""
        ...

    async def get_member(self, member_id: str) -> Member | None: ...
    async def get_member_by_email(self, email: str) -> Member | None: ...
    async def list_members(self, tenant_id: str) -> list[Member]:
        """Oldest first."""
        ...

    async def update_member(self, member: Member) -> None:
        """Replace a stored member (same id and email); KeyError if missing."""
        ...

    # --- credentials --------------------------------------------------------------
    async def add_credential(self, credential: Credential) -> None:
        """Raises ConflictError if the hash exists."""
        ...

    async def get_credential(self, hash_: str) -> Credential | None: ...

    async def use_credential(self, hash_: str, at: float) -> Credential | None:
        """Mark as used unless it is; returns the record as it was before (its
        ``used_at`` is set if it had been used already), None if missing."""
        ...

    async def revoke_credential(self, hash_: str, at: float) -> None: ...

    async def revoke_member_credentials(self, member_id: str, kind: str, at: float) -> int:
        """Revoke every unrevoked credential of ``kind`` of the member; how many."""
        ...

    # --- OAuth clients and grants -------------------------------------------------
    async def add_client(self, client: OAuthClient) -> None: ...
    async def get_client(self, client_id: str) -> OAuthClient | None: ...
    async def list_clients(self) -> list[OAuthClient]: ...
    async def add_grant(self, grant: Grant) -> None: ...
    async def get_grant(self, grant_id: str) -> Grant | None: ...
    async def list_grants(self, member_id: str) -> list[Grant]:
        """Oldest first, revoked ones too."""
        ...

    async def revoke_grant(self, grant_id: str, at: float, reason: str) -> bool:
        """True if this call revoked it (False: missing or revoked before)."""
        ...

    # --- sign-in throttling -------------------------------------------------------
    async def note_failure(self, key: str, at: float, window: float) -> int:
        """Record a failed sign-in under ``key``; failures in (at - window, at]."""
        ...

    async def count_failures(self, key: str, now: float, window: float) -> int: ...


def account_store(store: Store) -> AccountStore:
    """The account store sharing ``store``'s connection (which must be opened first)."""
    from .redis_store import RedisStore
    from .sqlite import SqliteStore

    if isinstance(store, SqliteStore):
        from .accounts_sqlite import SqliteAccountStore

        return SqliteAccountStore(store)
    if isinstance(store, RedisStore):
        from .accounts_redis import RedisAccountStore

        return RedisAccountStore(store)
    raise TypeError(f"no account store for {type(store).__name__}")
