"""The ``AccountStore`` contract (mediaserver/state/accounts.py) on SQLite and on a real
redis-server: members, credentials (single use, revocation), clients, grants, sign-in
failure counting; and that it all survives reopening the store."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from redis_server import RedisServer

from mediaserver.state import ConflictError, RedisStore, SqliteStore, Store
from mediaserver.state.accounts import (
    AccountStore,
    Credential,
    Grant,
    Member,
    OAuthClient,
    account_store,
)

StoreFactory = Callable[[], Store]


@pytest.fixture(params=["sqlite", "redis"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    if request.param == "sqlite":
        path = str(tmp_path / "state.sqlite3")
        return lambda: SqliteStore(path)
    server: RedisServer = request.getfixturevalue("redis_server")
    prefix = f"test{uuid.uuid4().hex[:8]}:"
    return lambda: RedisStore(server.url, prefix=prefix)


@pytest.fixture
async def accounts(store_factory: StoreFactory) -> AsyncIterator[AccountStore]:
    store = store_factory()
    await store.open()
    try:
        yield account_store(store)
    finally:
        await store.close()


def member(n: int = 1, tenant: str = "tn_a", **kw: object) -> Member:
    fields: dict[str, object] = {
        "id": f"usr_{n}",
        "tenant_id": tenant,
        "email": f"p{n}@example.com",
        "name": f"Person {n}",
        "created_at": 100.0 + n,
    }
    fields.update(kw)
    return Member(**fields)  # type: ignore[arg-type]


def cred(
    h: str = "h1", kind: str = "session", member_id: str = "usr_1", **kw: object
) -> Credential:
    fields: dict[str, object] = {
        "hash": h,
        "kind": kind,
        "member_id": member_id,
        "tenant_id": "tn_a",
        "created_at": 100.0,
        "expires_at": 4_000_000_000.0,
        "data": {"csrf": "c", "scope": ["meetings:write"]},
    }
    fields.update(kw)
    return Credential(**fields)  # type: ignore[arg-type]


async def test_members_unique_email_lookup_update(accounts: AccountStore) -> None:
    await accounts.add_member(member(1))
    await accounts.add_member(member(2))
    await accounts.add_member(member(3, tenant="tn_b"))
    with pytest.raises(ConflictError):
        await accounts.add_member(member(9, email="p1@example.com"))
    with pytest.raises(ConflictError):
        await accounts.add_member(member(1, email="other@example.com"))
    assert await accounts.get_member("usr_1") == member(1)
    assert await accounts.get_member_by_email("p2@example.com") == member(2)
    assert await accounts.get_member_by_email("nobody@example.com") is None
    assert [m.id for m in await accounts.list_members("tn_a")] == ["usr_1", "usr_2"]
    changed = member(1, password_hash="$argon2id$x", password_set_at=5.5)
    await accounts.update_member(changed)
    assert await accounts.get_member("usr_1") == changed
    with pytest.raises(KeyError):
        await accounts.update_member(member(7))
    with pytest.raises(KeyError):  # the email is not changed by an update
        await accounts.update_member(member(1, email="new@example.com"))


async def test_credentials_single_use_and_revocation(accounts: AccountStore) -> None:
    await accounts.add_credential(cred("h1", grant_id="gr_1"))
    with pytest.raises(ConflictError):
        await accounts.add_credential(cred("h1"))
    assert await accounts.get_credential("h1") == cred("h1", grant_id="gr_1")
    assert await accounts.get_credential("nope") is None
    first = await accounts.use_credential("h1", 200.5)
    assert first is not None and first.used_at is None
    second = await accounts.use_credential("h1", 300.0)
    assert second is not None and second.used_at == 200.5  # the first use is kept
    assert await accounts.use_credential("nope", 1.0) is None
    await accounts.revoke_credential("h1", 400.25)
    await accounts.revoke_credential("h1", 500.0)
    got = await accounts.get_credential("h1")
    assert got is not None and got.revoked_at == 400.25 and got.used_at == 200.5


async def test_concurrent_uses_have_one_winner(accounts: AccountStore) -> None:
    await accounts.add_credential(cred("code", kind="code"))
    results = await asyncio.gather(*(accounts.use_credential("code", float(i)) for i in range(8)))
    assert sum(1 for r in results if r is not None and r.used_at is None) == 1


async def test_revoke_member_credentials_of_a_kind(accounts: AccountStore) -> None:
    await accounts.add_credential(cred("s1"))
    await accounts.add_credential(cred("s2"))
    await accounts.add_credential(cred("a1", kind="access"))
    await accounts.add_credential(cred("s3", member_id="usr_2"))
    assert await accounts.revoke_member_credentials("usr_1", "session", 9.0) == 2
    assert await accounts.revoke_member_credentials("usr_1", "session", 10.0) == 0
    for h, revoked in (("s1", 9.0), ("s2", 9.0), ("a1", None), ("s3", None)):
        got = await accounts.get_credential(h)
        assert got is not None and got.revoked_at == revoked, h


async def test_clients_and_grants(accounts: AccountStore) -> None:
    client = OAuthClient(
        "cl_1", "Bookly", ("https://a.example/cb", "https://b.example/cb"), True, "ff" * 32, 1.0
    )
    await accounts.add_client(client)
    await accounts.add_client(
        OAuthClient("cl_2", "Pub", ("http://127.0.0.1/cb",), False, None, 2.0)
    )
    with pytest.raises(ConflictError):
        await accounts.add_client(client)
    assert await accounts.get_client("cl_1") == client
    assert [c.id for c in await accounts.list_clients()] == ["cl_1", "cl_2"]
    grant = Grant("gr_1", "cl_1", "usr_1", "tn_a", ("meetings:write", "meetings:read"), 5.0)
    await accounts.add_grant(grant)
    await accounts.add_grant(Grant("gr_2", "cl_2", "usr_1", "tn_a", ("meetings:read",), 6.0))
    assert await accounts.get_grant("gr_1") == grant
    assert [g.id for g in await accounts.list_grants("usr_1")] == ["gr_1", "gr_2"]
    assert await accounts.list_grants("usr_9") == []
    assert await accounts.revoke_grant("gr_1", 7.5, "disconnected_by_member") is True
    assert await accounts.revoke_grant("gr_1", 8.0, "again") is False
    assert await accounts.revoke_grant("gr_404", 8.0, "x") is False
    got = await accounts.get_grant("gr_1")
    assert got is not None and got.revoked_at == 7.5
    assert got.revoked_reason == "disconnected_by_member"


async def test_concurrent_grant_revocations_report_once(accounts: AccountStore) -> None:
    await accounts.add_grant(Grant("gr_1", "cl_1", "usr_1", "tn_a", ("meetings:read",), 5.0))
    results = await asyncio.gather(
        *(accounts.revoke_grant("gr_1", float(i), "r") for i in range(8))
    )
    assert results.count(True) == 1


async def test_failures_are_counted_in_the_window(accounts: AccountStore) -> None:
    assert await accounts.count_failures("account:a", 100.0, 60.0) == 0
    assert await accounts.note_failure("account:a", 100.0, 60.0) == 1
    assert await accounts.note_failure("account:a", 130.0, 60.0) == 2
    assert await accounts.note_failure("account:b", 130.0, 60.0) == 1
    assert await accounts.count_failures("account:a", 130.0, 60.0) == 2
    assert await accounts.count_failures("account:a", 161.0, 60.0) == 1  # 100 left it
    assert await accounts.note_failure("account:a", 200.0, 60.0) == 1


async def test_account_data_survives_reopen(store_factory: StoreFactory) -> None:
    store = store_factory()
    await store.open()
    a = account_store(store)
    await a.add_member(member(1))
    await a.add_credential(cred("h1"))
    await a.add_grant(Grant("gr_1", "cl_1", "usr_1", "tn_a", ("meetings:read",), 5.0))
    await store.close()
    store = store_factory()
    await store.open()
    try:
        b = account_store(store)
        assert await b.get_member("usr_1") == member(1)
        assert await b.get_credential("h1") == cred("h1")
        assert await b.get_grant("gr_1") is not None
    finally:
        await store.close()


async def test_long_expired_credentials_are_dropped(accounts: AccountStore) -> None:
    """A day after it expired a credential is gone (by the time the next one is added)."""
    await accounts.add_credential(cred("old", created_at=900.0, expires_at=1000.0))
    await accounts.add_credential(
        cred("new", created_at=1_900_000_000.0, expires_at=1_900_003_600.0)
    )
    assert await accounts.get_credential("old") is None
    assert await accounts.get_credential("new") is not None
    # and a revocation by member skips (and forgets) what is gone
    assert await accounts.revoke_member_credentials("usr_1", "session", 5.0) == 1
