"""The store operations of the management calls (issue 17), on SQLite and on a real
Redis: the link listing by (created_at, id) with updated_since, the one-time Redis
update-index build, revoking guest invites, changing webhook endpoints, revoking
API keys except a tenant's last admin key, and changing a tenant's own rate limit."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import pytest
import redis.asyncio as aioredis
from redis_server import RedisServer
from test_store_contract import make_link, store, store_factory, uid

from mediaserver.state import (
    ApiKey,
    GuestInvite,
    Link,
    RedisStore,
    Store,
    Tenant,
    WebhookEndpoint,
    redis_manage,
)

__all__ = ["store", "store_factory"]  # the contract's fixtures: both stores


@pytest.fixture(params=["index", "walk"])
def redis_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways the Redis listing answers updated_since: sorting the few changed
    links of the update index, or walking the created_at index (many changed)."""
    if request.param == "walk":
        monkeypatch.setattr(redis_manage, "CANDIDATES_MAX", 0)
    return str(request.param)


async def _all_pages(store: Store, tenant_id: str, limit: int, **kw: object) -> list[list[Link]]:
    pages: list[list[Link]] = []
    after = None
    while True:
        page = await store.list_links_page(tenant_id, after=after, limit=limit, **kw)  # type: ignore[arg-type]
        if not page:
            return pages
        pages.append(page)
        after = (page[-1].created_at, page[-1].id)


async def test_list_links_page_order_and_cursor(store: Store, redis_path: str) -> None:
    links = [
        make_link(created_at=float(10 + i // 3), updated_at=float(10 + i // 3)) for i in range(8)
    ]  # three links share each created_at: the id breaks the tie
    links.append(make_link("tn_other", created_at=11.0))
    for link in reversed(links):
        await store.create_link(link, None, None)
    mine = sorted(
        (ln for ln in links if ln.tenant_id == "tn_a"),
        key=lambda x: (x.created_at, x.id),
        reverse=True,  # newest first
    )
    pages = await _all_pages(store, "tn_a", 3)
    assert [len(p) for p in pages] == [3, 3, 2]
    assert [ln for p in pages for ln in p] == mine
    assert await store.list_links_page("tn_a", limit=100) == mine
    assert await store.list_links_page("tn_a", limit=0) == []
    after = (mine[3].created_at, mine[3].id)
    assert await store.list_links_page("tn_a", after=after, limit=2) == mine[4:6]
    # the end: a cursor past the last link
    last = (mine[-1].created_at, mine[-1].id)
    assert await store.list_links_page("tn_a", after=last) == []


async def test_list_links_page_updated_since(store: Store, redis_path: str) -> None:
    old = make_link(created_at=1.0, updated_at=1.0)
    moved = make_link(created_at=2.0, updated_at=2.0)
    revoked = make_link(created_at=3.0, updated_at=3.0)
    fresh = make_link(created_at=50.0, updated_at=50.0)
    for link in (old, moved, revoked, fresh):
        await store.create_link(link, None, None)
    moved2 = await store.update_link(
        dataclasses.replace(moved, updated_at=40.25, valid_from=7.0), moved.version
    )
    revoked2 = await store.update_link(
        dataclasses.replace(revoked, updated_at=40.5, revoked_at=40.5), revoked.version
    )
    # revoked links are listed too (a calendar must see cancellations)
    assert await store.list_links_page("tn_a", updated_since=40.0) == [fresh, revoked2, moved2]
    assert await store.list_links_page("tn_a", updated_since=40.25) == [fresh, revoked2, moved2]
    assert await store.list_links_page("tn_a", updated_since=40.250001) == [fresh, revoked2]
    assert await store.list_links_page("tn_a", updated_since=50.5) == []
    assert await store.list_links_page("tn_a", updated_since=0.0) == [
        fresh,
        revoked2,
        moved2,
        old,
    ]
    pages = await _all_pages(store, "tn_a", 1, updated_since=40.0)
    assert [p[0] for p in pages] == [fresh, revoked2, moved2]


async def test_paging_is_stable_under_concurrent_updates(store: Store, redis_path: str) -> None:
    """Links updated while a client pages (seen already or not yet) keep their place:
    every link is listed exactly once."""
    links = [make_link(created_at=float(i), updated_at=float(i)) for i in range(12)]
    for link in links:
        await store.create_link(link, None, None)
    seen: list[str] = []
    after = None
    clock = 100.0
    while True:
        page = await store.list_links_page("tn_a", after=after, limit=4, updated_since=0.0)
        if not page:
            break
        seen.extend(ln.id for ln in page)
        after = (page[-1].created_at, page[-1].id)
        for target in (page[0], links[0]):  # one already listed, one still to come
            current = await store.get_link(target.id)
            assert current is not None
            clock += 1
            await store.update_link(dataclasses.replace(current, updated_at=clock), current.version)
    assert seen == [ln.id for ln in reversed(links)]


async def test_list_links_page_filters(store: Store, redis_path: str) -> None:
    a1 = make_link(created_at=1.0, event_id="e1", calendar_id="c1")
    a2 = make_link(created_at=2.0, event_id="e1", calendar_id="c2")
    b = make_link(created_at=3.0, event_id="e2", calendar_id="c1")
    for link in (a1, a2, b):
        await store.create_link(link, None, None)
    assert await store.list_links_page("tn_a", event_id="e1") == [a2, a1]
    assert await store.list_links_page("tn_a", calendar_id="c1") == [b, a1]
    assert await store.list_links_page("tn_a", event_id="e1", calendar_id="c2") == [a2]
    assert await store.list_links_page("tn_a", event_id="e1", after=(2.0, a2.id)) == [a1]
    assert await store.list_links_page("tn_a", calendar_id="c1", updated_since=2.5) == [b]
    assert await store.list_links_page("tn_b", event_id="e1") == []


async def test_redis_update_index_is_built_once_for_existing_links(
    redis_server: RedisServer,
) -> None:
    """Links written before the update index existed: the first start-up indexes
    them (once; a second start-up changes nothing), writes keep it from then on."""
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    first = RedisStore(redis_server.url, prefix=prefix)
    await first.open()
    links = [make_link(created_at=float(i), updated_at=float(i) + 0.125) for i in range(5)]
    for link in links:
        await first.create_link(link, None, None)
    await first.close()
    raw = aioredis.from_url(redis_server.url, decode_responses=True)
    try:
        # as an older version left its data: no index, no marker
        await raw.delete(f"{prefix}link_updates:tn_a", f"{prefix}link_updates_built")
        second = RedisStore(redis_server.url, prefix=prefix)
        await second.open()
        try:
            assert await second.list_links_page("tn_a", updated_since=2.125) == links[:1:-1]
            assert await raw.get(f"{prefix}link_updates_built") == "1"
            # the index is not rebuilt: a link written meanwhile by hand stays out
            await raw.zrem(f"{prefix}link_updates:tn_a", links[0].id)
        finally:
            await second.close()
        third = RedisStore(redis_server.url, prefix=prefix)
        await third.open()
        try:
            assert await raw.zscore(f"{prefix}link_updates:tn_a", links[0].id) is None
            assert await third.list_links_page("tn_a", updated_since=0.0) == links[:0:-1]
        finally:
            await third.close()
    finally:
        await raw.aclose()


# --- guest invites ---------------------------------------------------------------------
async def test_revoke_guest_invite(store: Store) -> None:
    link = make_link()
    await store.create_link(link, None, None)
    invite = GuestInvite(
        id=uid("gi"),
        link_id=link.id,
        tenant_id="tn_a",
        token=uid("t"),
        max_guests=3,
        created_at=1.5,
    )
    other = dataclasses.replace(invite, id=uid("gi"), token=uid("t"))
    await store.add_guest_invite(invite)
    await store.add_guest_invite(other)
    assert await store.revoke_guest_invite(invite.id, 10.0) is True
    assert await store.revoke_guest_invite(invite.id, 20.0) is True  # the first time stays
    revoked = dataclasses.replace(invite, revoked_at=10.0)
    assert await store.get_guest_invite(invite.token) == revoked
    assert await store.list_guest_invites(link.id) == [revoked, other]
    assert await store.revoke_guest_invite("gi_missing", 1.0) is False
    assert await store.get_guest_invite(other.token) == other


# --- webhook endpoints -----------------------------------------------------------------
async def test_update_webhook_endpoint(store: Store) -> None:
    ep = WebhookEndpoint(
        id=uid("wh"), tenant_id="tn_a", url="https://a/h", secret="s", events=(), created_at=1.0
    )
    await store.add_webhook_endpoint(ep)
    await store.disable_webhook_endpoint(ep.id, 5.0)
    changed = await store.update_webhook_endpoint(
        ep.id, {"url": "https://b/h", "events": ("link.created",), "disabled_at": None}
    )
    expected = dataclasses.replace(ep, url="https://b/h", events=("link.created",))
    assert changed == expected
    assert await store.get_webhook_endpoint(ep.id) == expected
    assert await store.list_webhook_endpoints("tn_a") == [expected]
    assert await store.update_webhook_endpoint("wh_missing", {"url": "https://c/h"}) is None
    with pytest.raises(ValueError):
        await store.update_webhook_endpoint(ep.id, {"tenant_id": "tn_b"})
    assert await store.get_webhook_endpoint(ep.id) == expected
    # concurrent changes of different fields: both stay
    await asyncio.gather(
        store.update_webhook_endpoint(ep.id, {"url": "https://d/h"}),
        store.update_webhook_endpoint(ep.id, {"disabled_at": 9.5}),
    )
    got = await store.get_webhook_endpoint(ep.id)
    assert got is not None and (got.url, got.disabled_at) == ("https://d/h", 9.5)


# --- API keys ----------------------------------------------------------------------------
def _key(tenant_id: str = "tn_a", scopes: tuple[str, ...] = ("admin",)) -> ApiKey:
    return ApiKey(
        id=uid("k"), tenant_id=tenant_id, secret_hash="ab" * 32, created_at=1.0, scopes=scopes
    )


async def test_api_key_scopes_round_trip(store: Store) -> None:
    key = dataclasses.replace(_key(scopes=("links",)), name="calendar sync")
    await store.add_api_key(key)
    assert await store.get_api_key(key.id) == key
    legacy = ApiKey(id=uid("k"), tenant_id="tn_a", secret_hash="cd" * 32, created_at=2.0)
    assert legacy.scopes == ("admin",)  # keys stored before scopes: admin keys


async def test_revoke_api_key_keeps_the_last_admin(store: Store) -> None:
    admin1, admin2, plain = _key(), _key(), _key(scopes=("links",))
    foreign = _key("tn_b")
    for key in (admin1, admin2, plain, foreign):
        await store.add_api_key(key)
    assert await store.revoke_api_key_keeping_admin(plain.id, 5.0) == "revoked"
    assert await store.revoke_api_key_keeping_admin(plain.id, 6.0) == "already"
    assert await store.revoke_api_key_keeping_admin(admin1.id, 7.0) == "revoked"
    # admin2 is the tenant's last active admin key (tn_b's key does not count)
    assert await store.revoke_api_key_keeping_admin(admin2.id, 8.0) == "last-admin"
    assert await store.get_api_key(admin2.id) == admin2
    assert await store.revoke_api_key_keeping_admin("k_missing", 1.0) == "missing"
    revoked = await store.get_api_key(admin1.id)
    assert revoked == dataclasses.replace(admin1, revoked_at=7.0)
    plain_now = await store.get_api_key(plain.id)
    assert plain_now is not None and plain_now.revoked_at == 5.0


async def test_concurrent_revokes_of_the_last_two_admin_keys(store: Store) -> None:
    """Two admin keys revoked at once: exactly one is revoked, one stays."""
    for _ in range(3):
        a, b = _key(), _key()
        tenant = uid("tn")
        a, b = dataclasses.replace(a, tenant_id=tenant), dataclasses.replace(b, tenant_id=tenant)
        await store.add_api_key(a)
        await store.add_api_key(b)
        results = await asyncio.gather(
            store.revoke_api_key_keeping_admin(a.id, 1.0),
            store.revoke_api_key_keeping_admin(b.id, 1.0),
        )
        assert sorted(results) == ["last-admin", "revoked"]
        active = [k for k in await store.list_api_keys(tenant) if k.revoked_at is None]
        assert len(active) == 1


# --- a tenant's own rate limit -----------------------------------------------------------
async def test_update_tenant_rate_limit(store: Store) -> None:
    tenant = Tenant(id=uid("tn"), name="Bulk", created_at=1.0, guest_policy="allow")
    other = Tenant(id=uid("tn"), name="Other", created_at=2.0)
    await store.create_tenant(tenant)
    await store.create_tenant(other)
    changes = {"rate_limit_per_minute": 6000, "rate_limit_burst": 1000}
    updated = await store.update_tenant(tenant.id, changes)
    assert updated == dataclasses.replace(tenant, **changes)
    assert await store.get_tenant(tenant.id) == updated
    assert await store.get_tenant(other.id) == other
    assert await store.list_tenants() == [updated, other]
    back = {"rate_limit_per_minute": None, "rate_limit_burst": None}
    assert await store.update_tenant(tenant.id, back) == tenant
    assert await store.get_tenant(tenant.id) == tenant
    assert await store.update_tenant("tn_missing", changes) is None
    assert await store.get_tenant("tn_missing") is None
    with pytest.raises(ValueError):
        await store.update_tenant(tenant.id, {"id": "tn_x"})
