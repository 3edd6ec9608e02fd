"""``AccountStore`` on the Redis store: keys under the store's prefix, on its client.

Inserts go through the store's insert script (a record, its unique fields and its
indexes in one step); changes to a stored record are optimistic ``WATCH``/``MULTI``
transactions, as in the store (redis_base.py).

Key layout (``{p}`` is the store's prefix)::

    {p}acct:member:{id}           JSON of Member
    {p}acct:emails                hash: email -> member id (one account per email)
    {p}acct:members:{tenant_id}   zset: member id, score created_at
    {p}acct:cred:{hash}           JSON of Credential
    {p}acct:creds:{member_id}     zset: credential hash, score created_at
    {p}acct:client:{id}           JSON of OAuthClient
    {p}acct:clients               zset: client id, score created_at
    {p}acct:grant:{id}            JSON of Grant
    {p}acct:grants:{member_id}    zset: grant id, score created_at
    {p}acct:fail:{key}            zset: failed sign-ins, score time (expires)
"""

from __future__ import annotations

import dataclasses
import math
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

from redis.exceptions import WatchError

from .accounts import Credential, Grant, Member, OAuthClient, dump_record, load_record
from .redis_store import RedisStore

__all__ = ["RedisAccountStore"]

#: Credentials are kept this long after they expire (reuse is recognised until then).
KEEP_EXPIRED = 86400.0
#: No credential lives longer than this (accounts.* limits: a year), plus KEEP_EXPIRED.
MAX_AGE = 366 * 86400.0 + KEEP_EXPIRED

T = TypeVar("T")


class RedisAccountStore:
    def __init__(self, store: RedisStore) -> None:
        self._store = store

    def _k(self, *parts: str) -> str:
        return self._store.prefix + "acct:" + ":".join(parts)

    async def _get(self, cls: type[T], key: str) -> T | None:
        raw = await self._store._r.get(key)
        return None if raw is None else load_record(cls, str(raw))

    async def _list(self, cls: type[T], zset: str, record: Callable[[str], str]) -> list[T]:
        r = self._store._r
        ids = [str(i) for i in await r.zrange(zset, 0, -1)]
        if not ids:
            return []
        rows = await r.mget([record(i) for i in ids])
        return [load_record(cls, str(row)) for row in rows if row is not None]

    async def _change(self, key: str, cls: type[T], change: Callable[[T], T | None]) -> T | None:
        """Apply ``change`` to the stored record atomically; returns the record as it
        was (None if missing). ``change`` returning None writes nothing."""
        async with self._store._r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        return None
                    before = load_record(cls, str(raw))
                    after = change(before)
                    if after is None:
                        await pipe.unwatch()  # type: ignore[no-untyped-call]
                        return before
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, dump_record(after), keepttl=True)
                    await pipe.execute()
                    return before
                except WatchError:
                    continue

    # --- members ------------------------------------------------------------------
    async def add_member(self, member: Member) -> None:
        await self._store._insert(
            self._k("member", member.id),
            member.id,
            dump_record(member),
            unique=[(self._k("emails"), member.email)],
            index=[(self._k("members", member.tenant_id), member.created_at)],
        )

    async def get_member(self, member_id: str) -> Member | None:
        return await self._get(Member, self._k("member", member_id))

    async def get_member_by_email(self, email: str) -> Member | None:
        member_id = await self._store._r.hget(self._k("emails"), email)
        return None if member_id is None else await self.get_member(str(member_id))

    async def list_members(self, tenant_id: str) -> list[Member]:
        return await self._list(
            Member, self._k("members", tenant_id), lambda i: self._k("member", i)
        )

    async def update_member(self, member: Member) -> None:
        def change(old: Member) -> Member:
            if old.email != member.email:
                raise KeyError(member.id)
            return member

        if await self._change(self._k("member", member.id), Member, change) is None:
            raise KeyError(member.id)

    # --- credentials --------------------------------------------------------------
    async def add_credential(self, credential: Credential) -> None:
        key = self._k("cred", credential.hash)
        await self._store._insert(
            key,
            credential.hash,
            dump_record(credential),
            index=[(self._k("creds", credential.member_id), credential.created_at)],
        )
        # gone a day after it expires (a used code is kept that long to detect reuse)
        await self._store._r.expireat(key, math.ceil(credential.expires_at + KEEP_EXPIRED))
        # the member's index: entries older than the longest life a credential has
        await self._store._r.zremrangebyscore(
            self._k("creds", credential.member_id), "-inf", repr(credential.created_at - MAX_AGE)
        )

    async def get_credential(self, hash_: str) -> Credential | None:
        return await self._get(Credential, self._k("cred", hash_))

    async def _set_once(self, hash_: str, field: str, at: float) -> Credential | None:
        def change(cred: Credential) -> Credential | None:
            if getattr(cred, field) is not None:
                return None
            if field == "used_at":
                return dataclasses.replace(cred, used_at=at)
            return dataclasses.replace(cred, revoked_at=at)

        return await self._change(self._k("cred", hash_), Credential, change)

    async def use_credential(self, hash_: str, at: float) -> Credential | None:
        return await self._set_once(hash_, "used_at", at)

    async def revoke_credential(self, hash_: str, at: float) -> None:
        await self._set_once(hash_, "revoked_at", at)

    async def revoke_member_credentials(self, member_id: str, kind: str, at: float) -> int:
        count = 0
        index = self._k("creds", member_id)
        for hash_ in await self._store._r.zrange(index, 0, -1):
            cred = await self.get_credential(str(hash_))
            if cred is None:  # expired away: drop it from the index too
                await self._store._r.zrem(index, str(hash_))
            elif cred.kind == kind and cred.revoked_at is None:
                before = await self._set_once(str(hash_), "revoked_at", at)
                count += before is not None and before.revoked_at is None
        return count

    # --- OAuth clients and grants -------------------------------------------------
    async def add_client(self, client: OAuthClient) -> None:
        await self._store._insert(
            self._k("client", client.id),
            client.id,
            dump_record(client),
            index=[(self._k("clients"), client.created_at)],
        )

    async def get_client(self, client_id: str) -> OAuthClient | None:
        return await self._get(OAuthClient, self._k("client", client_id))

    async def list_clients(self) -> list[OAuthClient]:
        return await self._list(OAuthClient, self._k("clients"), lambda i: self._k("client", i))

    async def add_grant(self, grant: Grant) -> None:
        await self._store._insert(
            self._k("grant", grant.id),
            grant.id,
            dump_record(grant),
            index=[(self._k("grants", grant.member_id), grant.created_at)],
        )

    async def get_grant(self, grant_id: str) -> Grant | None:
        return await self._get(Grant, self._k("grant", grant_id))

    async def list_grants(self, member_id: str) -> list[Grant]:
        return await self._list(Grant, self._k("grants", member_id), lambda i: self._k("grant", i))

    async def revoke_grant(self, grant_id: str, at: float, reason: str) -> bool:
        def change(grant: Grant) -> Grant | None:
            if grant.revoked_at is not None:
                return None
            return dataclasses.replace(grant, revoked_at=at, revoked_reason=reason)

        before = await self._change(self._k("grant", grant_id), Grant, change)
        return before is not None and before.revoked_at is None

    # --- sign-in throttling -------------------------------------------------------
    async def note_failure(self, key: str, at: float, window: float) -> int:
        zkey = self._k("fail", key)
        async with self._store._r.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(zkey, "-inf", repr(at - window))
            pipe.zadd(zkey, {f"{at!r}:{secrets.token_hex(4)}": at})
            pipe.zcount(zkey, f"({at - window!r}", "+inf")
            pipe.expire(zkey, math.ceil(window) + 1)
            results: list[Any] = await pipe.execute()
        return int(results[2])

    async def count_failures(self, key: str, now: float, window: float) -> int:
        return int(
            await self._store._r.zcount(self._k("fail", key), f"({now - window!r}", repr(now))
        )
