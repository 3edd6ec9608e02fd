"""The ``Store`` contract (mediaserver/state/store.py), run against every implementation:
SQLite on a file and Redis against a private redis-server. Plus durability: an
acknowledged write survives SIGKILL (of the writing process for SQLite, of the server
for Redis)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
import os
import signal
import sqlite3
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from redis_server import RedisServer

from mediaserver.state import (
    ApiKey,
    ConflictError,
    DeliveryAttempt,
    GuestInvite,
    Link,
    OutboxEvent,
    RedisStore,
    SqliteStore,
    Store,
    Tenant,
    WebhookEndpoint,
    create_store,
    sqlite_base,
    sqlite_schema,
)

StoreFactory = Callable[[], Store]

_ids = itertools.count(1)


def uid(prefix: str) -> str:
    return f"{prefix}_{next(_ids):06d}_{uuid.uuid4().hex[:8]}"


def make_link(tenant_id: str = "tn_a", *, created_at: float = 1000.0, **kw: Any) -> Link:
    fields: dict[str, Any] = {
        "id": uid("lnk"),
        "tenant_id": tenant_id,
        "kind": "event",
        "slug": uid("s"),
        "host_slug": uid("h"),
        "created_at": created_at,
        "updated_at": created_at,
        "event": {"summary": "Standup", "attendees": [], "nested": {"x": 1.25}},
    }
    fields.update(kw)
    return Link(**fields)


def make_event(
    endpoint_id: str = "wh_1",
    ordering_key: str = "lnk_1",
    *,
    tenant_id: str = "tn_a",
    next_attempt_at: float = 0.0,
    **kw: Any,
) -> OutboxEvent:
    fields: dict[str, Any] = {
        "id": uid("evt"),
        "event_id": uid("ev"),
        "tenant_id": tenant_id,
        "endpoint_id": endpoint_id,
        "type": "room.started",
        "ordering_key": ordering_key,
        "payload": {"room": ordering_key, "list": [], "empty": {}},
        "created_at": 100.0,
        "next_attempt_at": next_attempt_at,
    }
    fields.update(kw)
    return OutboxEvent(**fields)


@pytest.fixture(params=["sqlite", "redis"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Makes (unopened) stores that all see the same data."""
    if request.param == "sqlite":
        # A directory that does not exist yet: the store creates it.
        path = str(tmp_path / "missing" / "dir" / "state.sqlite3")
        return lambda: SqliteStore(path)
    server: RedisServer = request.getfixturevalue("redis_server")
    prefix = f"test{uuid.uuid4().hex[:8]}:"
    return lambda: RedisStore(server.url, prefix=prefix)


@pytest.fixture
async def store(store_factory: StoreFactory) -> AsyncIterator[Store]:
    s = store_factory()
    await s.open()
    try:
        yield s
    finally:
        await s.close()


# --- secrets -----------------------------------------------------------------------
async def test_get_or_create_secret_first_candidate_wins(store: Store) -> None:
    assert await store.get_or_create_secret("join", "first") == "first"
    assert await store.get_or_create_secret("join", "second") == "first"
    assert await store.get_or_create_secret("other", "x") == "x"


async def test_concurrent_secret_creation_agrees(store: Store) -> None:
    results = await asyncio.gather(
        *(store.get_or_create_secret("race", f"c{i}") for i in range(10))
    )
    assert len(set(results)) == 1


async def test_data_survives_reopen(store_factory: StoreFactory) -> None:
    first = store_factory()
    await first.open()
    link = make_link()
    await first.create_link(link, "nk", None)
    await first.close()
    second = store_factory()
    await second.open()
    try:
        assert await second.get_link(link.id) == link
        assert await second.get_or_create_secret("s", "a") == "a"
    finally:
        await second.close()


# --- tenants and keys --------------------------------------------------------------
async def test_tenants(store: Store) -> None:
    assert await store.list_tenants() == []
    b = Tenant(id="tn_b", name="B", created_at=20.0, guest_policy="deny")
    a = Tenant(id="tn_a", name="A", created_at=10.0)
    await store.create_tenant(b)
    await store.create_tenant(a)
    assert await store.get_tenant("tn_a") == a
    assert await store.get_tenant("tn_b") == b
    assert await store.get_tenant("tn_missing") is None
    with pytest.raises(ConflictError):
        await store.create_tenant(dataclasses.replace(a, name="again"))
    assert await store.get_tenant("tn_a") == a
    assert await store.list_tenants() == [a, b]


async def test_api_keys_add_get_list_revoke(store: Store) -> None:
    k1 = ApiKey(id="k1", tenant_id="tn_a", secret_hash="ab" * 32, created_at=1.0)
    k2 = ApiKey(id="k2", tenant_id="tn_a", secret_hash="cd" * 32, created_at=2.0)
    k3 = ApiKey(id="k3", tenant_id="tn_b", secret_hash="ef" * 32, created_at=3.0)
    for key in (k2, k1, k3):
        await store.add_api_key(key)
    assert await store.get_api_key("k1") == k1
    assert await store.get_api_key("nope") is None
    assert await store.list_api_keys("tn_a") == [k1, k2]
    assert await store.list_api_keys("tn_b") == [k3]
    assert await store.list_api_keys("tn_none") == []

    assert await store.revoke_api_key("k1", 50.0) is True
    assert await store.get_api_key("k1") == dataclasses.replace(k1, revoked_at=50.0)
    # Revoking twice keeps the first time (and still reports the key exists).
    assert await store.revoke_api_key("k1", 99.0) is True
    assert (await store.get_api_key("k1")) == dataclasses.replace(k1, revoked_at=50.0)
    assert await store.revoke_api_key("nope", 1.0) is False
    assert await store.get_api_key("k2") == k2
    assert [k.revoked_at for k in await store.list_api_keys("tn_a")] == [50.0, None]


async def test_concurrent_revokes_keep_one_time(store: Store) -> None:
    await store.add_api_key(ApiKey(id="k", tenant_id="t", secret_hash="0", created_at=1.0))
    results = await asyncio.gather(*(store.revoke_api_key("k", float(t)) for t in range(10, 20)))
    assert results == [True] * 10
    key = await store.get_api_key("k")
    assert key is not None and key.revoked_at in {float(t) for t in range(10, 20)}


# --- links: create -------------------------------------------------------------------
async def test_create_and_get_link(store: Store) -> None:
    link = make_link(event_id="e1", calendar_id="c1", options={"lobby": True}, valid_from=5.5)
    stored, created = await store.create_link(link, None, None)
    assert created is True and stored == link
    assert await store.get_link(link.id) == link
    assert await store.get_link("lnk_missing") is None


async def test_create_link_idempotent_by_natural_key(store: Store) -> None:
    first = make_link()
    assert await store.create_link(first, "cal1/evt1", None) == (first, True)
    retry = make_link()  # a fresh id and fresh slugs, the same natural key
    assert await store.create_link(retry, "cal1/evt1", None) == (first, False)
    assert await store.get_link(retry.id) is None
    assert await store.get_link_by_slug(retry.slug) is None
    other = make_link()
    assert await store.create_link(other, "cal1/evt2", None) == (other, True)


async def test_create_link_idempotent_by_idempotency_key(store: Store) -> None:
    first = make_link()
    assert await store.create_link(first, None, "idem-1") == (first, True)
    retry = make_link()
    assert await store.create_link(retry, None, "idem-1") == (first, False)
    assert await store.create_link(retry, "some-natural-key", "idem-1") == (first, False)
    assert await store.get_link(retry.id) is None
    # Without keys every call creates.
    a, b = make_link(), make_link()
    assert (await store.create_link(a, None, None))[1] is True
    assert (await store.create_link(b, None, None))[1] is True


async def test_create_link_natural_key_and_idempotency_key_together(store: Store) -> None:
    first = make_link()
    await store.create_link(first, "nk", "ik")
    # Either key alone finds it.
    assert await store.create_link(make_link(), "nk", "other-ik") == (first, False)
    assert await store.create_link(make_link(), "other-nk", "ik") == (first, False)


async def test_create_link_keys_are_scoped_per_tenant(store: Store) -> None:
    a = make_link("tn_a")
    b = make_link("tn_b")
    assert await store.create_link(a, "nk", "ik") == (a, True)
    assert await store.create_link(b, "nk", "ik") == (b, True)
    assert await store.create_link(make_link("tn_b"), "nk", None) == (b, False)
    assert await store.create_link(make_link("tn_a"), None, "ik") == (a, False)


async def test_concurrent_creates_with_one_natural_key_create_one_link(store: Store) -> None:
    links = [make_link() for _ in range(8)]
    results = await asyncio.gather(*(store.create_link(lk, "same", None) for lk in links))
    assert sum(created for _, created in results) == 1
    winner = next(stored for stored, created in results if created)
    assert all(stored == winner for stored, _ in results)
    assert await store.find_links("tn_a") == [winner]


@pytest.mark.parametrize(
    "collide",
    ["slug-slug", "slug-host", "host-slug", "host-host", "own"],
)
async def test_slug_uniqueness(store: Store, collide: str) -> None:
    existing = make_link()
    await store.create_link(existing, None, None)
    new = make_link()
    if collide == "slug-slug":
        new = dataclasses.replace(new, slug=existing.slug)
    elif collide == "slug-host":
        new = dataclasses.replace(new, slug=existing.host_slug)
    elif collide == "host-slug":
        new = dataclasses.replace(new, host_slug=existing.slug)
    elif collide == "host-host":
        new = dataclasses.replace(new, host_slug=existing.host_slug)
    else:
        new = dataclasses.replace(new, host_slug=new.slug)
    with pytest.raises(ConflictError):
        await store.create_link(new, "nk-of-new", "ik-of-new")
    # Nothing of the failed create remains: not the link, its slugs or its keys.
    assert await store.get_link(new.id) is None
    assert await store.get_link_by_slug(existing.slug) == existing
    assert await store.get_link_by_slug(existing.host_slug) == existing
    fresh = make_link()
    assert await store.create_link(fresh, "nk-of-new", "ik-of-new") == (fresh, True)
    assert await store.find_links("tn_a") == sorted(
        [existing, fresh], key=lambda lk: lk.id, reverse=True
    )


async def test_slugs_are_global_across_tenants(store: Store) -> None:
    a = make_link("tn_a")
    await store.create_link(a, None, None)
    with pytest.raises(ConflictError):
        await store.create_link(make_link("tn_b", slug=a.host_slug), None, None)


async def test_duplicate_link_id_conflicts(store: Store) -> None:
    a = make_link()
    await store.create_link(a, None, None)
    with pytest.raises(ConflictError):
        await store.create_link(make_link(id=a.id), None, None)
    assert await store.get_link(a.id) == a


async def test_get_link_by_slug_and_host_slug(store: Store) -> None:
    link = make_link()
    await store.create_link(link, None, None)
    assert await store.get_link_by_slug(link.slug) == link
    assert await store.get_link_by_slug(link.host_slug) == link
    assert await store.get_link_by_slug("nope") is None
    revoked = dataclasses.replace(link, revoked_at=7.0)
    await store.update_link(revoked, 1)
    found = await store.get_link_by_slug(link.slug)
    assert found is not None and found.revoked_at == 7.0


# --- links: find -------------------------------------------------------------------------
async def test_find_links_filters_order_and_limit(store: Store) -> None:
    l1 = make_link(created_at=1.0, event_id="e1", calendar_id="c1")
    l2 = make_link(created_at=2.0, event_id="e1", calendar_id="c2")
    l3 = make_link(created_at=3.0, event_id="e2", calendar_id="c1")
    l4 = make_link(created_at=4.0, kind="personal", user_id="u1")
    l5 = make_link(created_at=5.0, event_id="e1", calendar_id="c1", user_id="u1")
    other = make_link("tn_b", created_at=6.0, event_id="e1", calendar_id="c1", user_id="u1")
    for link in (l3, l1, other, l5, l2, l4):  # insertion order is not the order
        await store.create_link(link, None, None)

    assert await store.find_links("tn_a") == [l5, l4, l3, l2, l1]
    assert await store.find_links("tn_a", limit=2) == [l5, l4]
    assert await store.find_links("tn_a", limit=0) == []
    assert await store.find_links("tn_a", event_id="e1") == [l5, l2, l1]
    assert await store.find_links("tn_a", event_id="e1", limit=1) == [l5]
    assert await store.find_links("tn_a", calendar_id="c1") == [l5, l3, l1]
    assert await store.find_links("tn_a", event_id="e1", calendar_id="c1") == [l5, l1]
    assert await store.find_links("tn_a", user_id="u1") == [l5, l4]
    assert await store.find_links("tn_a", user_id="u1", event_id="e1") == [l5]
    assert await store.find_links("tn_a", event_id="e1", calendar_id="c1", user_id="u1") == [l5]
    assert await store.find_links("tn_a", event_id="nope") == []
    assert await store.find_links("tn_b") == [other]
    assert await store.find_links("tn_c") == []


async def test_find_links_many(store: Store) -> None:
    links = [
        make_link(created_at=float(i), event_id="e" if i % 3 == 0 else None) for i in range(450)
    ]
    for link in links:
        await store.create_link(link, None, None)
    newest = links[::-1]
    assert await store.find_links("tn_a", limit=1000) == newest
    assert await store.find_links("tn_a") == newest[:100]
    matching = [lk for lk in newest if lk.event_id == "e"]
    assert await store.find_links("tn_a", event_id="e", limit=1000) == matching


# --- links: update -----------------------------------------------------------------------
async def test_update_link_compare_and_set(store: Store) -> None:
    link = make_link(event_id="e1")
    await store.create_link(link, None, None)
    changed = dataclasses.replace(link, options={"lobby": False}, updated_at=2000.0)
    stored = await store.update_link(changed, 1)
    assert stored == dataclasses.replace(changed, version=2)
    assert await store.get_link(link.id) == stored
    # A stale version is a conflict and changes nothing.
    with pytest.raises(ConflictError):
        await store.update_link(dataclasses.replace(link, options={"stale": True}), 1)
    with pytest.raises(ConflictError):
        await store.update_link(stored, 5)
    assert await store.get_link(link.id) == stored
    assert (await store.update_link(stored, 2)).version == 3
    # A missing link is a conflict too.
    with pytest.raises(ConflictError):
        await store.update_link(make_link(), 1)


async def test_concurrent_updates_one_wins(store: Store) -> None:
    link = make_link()
    await store.create_link(link, None, None)
    attempts = [dataclasses.replace(link, options={"n": i}) for i in range(6)]
    results = await asyncio.gather(
        *(store.update_link(a, 1) for a in attempts), return_exceptions=True
    )
    winners = [r for r in results if isinstance(r, Link)]
    assert len(winners) == 1
    assert all(isinstance(r, ConflictError) for r in results if not isinstance(r, Link))
    assert await store.get_link(link.id) == winners[0]


async def test_update_link_rotates_slugs(store: Store) -> None:
    link = make_link()
    await store.create_link(link, None, None)
    rotated = dataclasses.replace(link, slug="new-slug", host_slug="new-host")
    stored = await store.update_link(rotated, 1)
    assert await store.get_link_by_slug(link.slug) is None
    assert await store.get_link_by_slug(link.host_slug) is None
    assert await store.get_link_by_slug("new-slug") == stored
    assert await store.get_link_by_slug("new-host") == stored
    # The old slugs are free again.
    reuse = make_link(slug=link.slug, host_slug=link.host_slug)
    assert (await store.create_link(reuse, None, None))[1] is True
    # Swapping a link's own slug and host slug is fine; only one of them changing too.
    swapped = dataclasses.replace(stored, slug="new-host", host_slug="new-slug")
    stored = await store.update_link(swapped, 2)
    assert await store.get_link_by_slug("new-host") == stored
    stored = await store.update_link(dataclasses.replace(stored, host_slug="third"), 3)
    assert await store.get_link_by_slug("new-slug") is None
    assert await store.get_link_by_slug("third") == stored
    assert await store.get_link_by_slug("new-host") == stored


async def test_update_link_slug_collision_conflicts(store: Store) -> None:
    a = make_link()
    b = make_link()
    await store.create_link(a, None, None)
    await store.create_link(b, None, None)
    for bad in (
        dataclasses.replace(b, slug=a.slug),
        dataclasses.replace(b, slug=a.host_slug),
        dataclasses.replace(b, host_slug=a.slug),
        dataclasses.replace(b, slug="x", host_slug="x"),
    ):
        with pytest.raises(ConflictError):
            await store.update_link(bad, 1)
    # Nothing changed: b keeps version 1 and its slugs.
    assert await store.get_link(b.id) == b
    assert await store.get_link_by_slug(b.slug) == b
    assert await store.get_link_by_slug(b.host_slug) == b
    assert await store.get_link_by_slug(a.slug) == a
    assert await store.get_link_by_slug("x") is None


async def test_update_link_moves_find_indexes(store: Store) -> None:
    link = make_link(event_id="e1", calendar_id="c1", created_at=1.0)
    later = make_link(event_id="e2", created_at=2.0)
    await store.create_link(link, "nk", None)
    await store.create_link(later, None, None)
    moved = await store.update_link(
        dataclasses.replace(link, event_id="e2", calendar_id=None, user_id="u9"), 1
    )
    assert await store.find_links("tn_a", event_id="e1") == []
    assert await store.find_links("tn_a", calendar_id="c1") == []
    assert await store.find_links("tn_a", event_id="e2") == [later, moved]
    assert await store.find_links("tn_a", user_id="u9") == [moved]
    # The natural key still finds the (updated) link.
    assert await store.create_link(make_link(), "nk", None) == (moved, False)


# --- links: transactional outbox --------------------------------------------------------
def without_seq(events: list[OutboxEvent]) -> list[OutboxEvent]:
    return [dataclasses.replace(e, seq=0) for e in events]


async def test_create_link_enqueues_events(store: Store) -> None:
    (before,) = await store.enqueue_events([make_event(ordering_key="other")])
    link = make_link()
    events = [make_event(ordering_key=link.id), make_event(ordering_key=link.id)]
    assert await store.create_link(link, "nk", None, events=events) == (link, True)
    listed = await store.list_outbox("tn_a")
    assert without_seq(listed) == without_seq([*events[::-1], before])
    seqs = [e.seq for e in listed[::-1]]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3 and seqs[0] == before.seq
    # Only the head of the link's queue is due (per-room order), with its seq.
    due = await store.due_events(now=10.0)
    assert sorted(e.id for e in due) == sorted([before.id, events[0].id])
    assert next(e for e in due if e.id == events[0].id) == listed[1]
    (after,) = await store.enqueue_events([make_event()])
    assert after.seq > seqs[-1]


async def test_create_link_without_events_enqueues_nothing(store: Store) -> None:
    assert (await store.create_link(make_link(), None, None, events=()))[1] is True
    assert await store.list_outbox("tn_a") == []


async def test_create_link_existing_enqueues_nothing(store: Store) -> None:
    first = make_link()
    await store.create_link(first, "nk", "ik", events=[make_event()])
    listed = await store.list_outbox("tn_a")
    for natural_key, idempotency_key in (("nk", None), (None, "ik"), ("nk", "other-ik")):
        retry = make_link()
        result = await store.create_link(
            retry, natural_key, idempotency_key, events=[make_event(), make_event()]
        )
        assert result == (first, False)
        assert await store.get_link(retry.id) is None
    assert await store.list_outbox("tn_a") == listed
    assert len(listed) == 1


async def test_concurrent_creates_with_events_enqueue_once(store: Store) -> None:
    links = [make_link() for _ in range(8)]
    results = await asyncio.gather(
        *(
            store.create_link(lk, "same", None, events=[make_event(ordering_key=lk.id)])
            for lk in links
        )
    )
    winners = [stored for stored, created in results if created]
    assert len(winners) == 1
    (event,) = await store.list_outbox("tn_a")
    assert event.ordering_key == winners[0].id


async def test_update_link_enqueues_events(store: Store) -> None:
    link = make_link()
    await store.create_link(link, None, None)
    events = [make_event(ordering_key=link.id, type="link.updated") for _ in range(2)]
    stored = await store.update_link(dataclasses.replace(link, options={"x": 1}), 1, events=events)
    assert stored.version == 2 and await store.get_link(link.id) == stored
    listed = await store.list_outbox("tn_a")
    assert without_seq(listed) == without_seq(events[::-1])
    assert 0 < listed[1].seq < listed[0].seq
    assert await store.due_events(now=10.0) == [listed[1]]
    more = [make_event(ordering_key=link.id)]
    await store.update_link(stored, 2, events=more)
    newest = (await store.list_outbox("tn_a", limit=1))[0]
    assert newest.id == more[0].id and newest.seq > listed[0].seq


async def test_stale_update_link_enqueues_nothing(store: Store) -> None:
    link = make_link()
    await store.create_link(link, None, None)
    stored = await store.update_link(link, 1, events=[make_event()])
    listed = await store.list_outbox("tn_a")
    with pytest.raises(ConflictError):
        await store.update_link(
            dataclasses.replace(link, options={"stale": True}), 1, events=[make_event()]
        )
    with pytest.raises(ConflictError):
        await store.update_link(make_link(), 1, events=[make_event()])  # a missing link
    other = make_link()
    await store.create_link(other, None, None)
    with pytest.raises(ConflictError):  # a slug collision
        await store.update_link(
            dataclasses.replace(stored, slug=other.slug), 2, events=[make_event()]
        )
    assert await store.get_link(link.id) == stored
    assert await store.list_outbox("tn_a") == listed


async def test_create_link_event_conflict_stores_nothing(store: Store) -> None:
    (existing,) = await store.enqueue_events([make_event()])
    link = make_link()
    twin = make_event()
    for events in (
        [make_event(), dataclasses.replace(make_event(), id=existing.id)],  # in the outbox
        [twin, twin],  # repeated in the batch
    ):
        with pytest.raises(ConflictError):
            await store.create_link(link, "nk", "ik", events=events)
        # Neither the link (nor its slugs and keys) nor any event was written.
        assert await store.get_link(link.id) is None
        assert await store.get_link_by_slug(link.slug) is None
        assert await store.get_link_by_slug(link.host_slug) is None
        assert await store.find_links("tn_a") == []
        assert await store.list_outbox("tn_a") == [existing]
        assert await store.due_events(now=10.0) == [existing]
    # The keys are still free: a clean retry creates the link and enqueues.
    event = make_event()
    assert await store.create_link(link, "nk", "ik", events=[event]) == (link, True)
    assert [e.id for e in await store.list_outbox("tn_a")] == [event.id, existing.id]


async def test_update_link_event_conflict_changes_nothing(store: Store) -> None:
    (existing,) = await store.enqueue_events([make_event()])
    link = make_link(event_id="e1")
    await store.create_link(link, None, None)
    changed = dataclasses.replace(link, slug="rotated", event_id="e2")
    with pytest.raises(ConflictError):
        await store.update_link(
            changed, 1, events=[make_event(), dataclasses.replace(make_event(), id=existing.id)]
        )
    assert await store.get_link(link.id) == link
    assert await store.get_link_by_slug(link.slug) == link
    assert await store.get_link_by_slug("rotated") is None
    assert await store.find_links("tn_a", event_id="e1") == [link]
    assert await store.list_outbox("tn_a") == [existing]
    assert (await store.update_link(changed, 1)).version == 2


async def test_link_events_numbers_are_exact(store: Store) -> None:
    payload = {"f": 0.1 + 0.2, "big": 2**60 + 1, "neg": -1e-300, "nested": [{"t": 1.0}]}
    link = make_link()
    created = make_event(payload=payload, next_attempt_at=1.0000000000000002, created_at=0.3)
    updated = make_event(payload=payload, next_attempt_at=2.5, created_at=1e-7)
    await store.create_link(link, None, None, events=[created])
    await store.update_link(link, 1, events=[updated])
    listed = await store.list_outbox("tn_a")
    assert without_seq(listed) == without_seq([updated, created])
    assert listed[1].payload == payload and listed[1].next_attempt_at == 1.0000000000000002
    assert await store.due_events(now=1.0) == []
    assert [e.id for e in await store.due_events(now=1.0000000000000002)] == [created.id]


async def test_sqlite_create_link_rolls_back_after_the_insert(tmp_path: Path) -> None:
    """The failing event insert runs after the link's rows are written (same
    transaction): the rollback must take them away too."""
    store = SqliteStore(str(tmp_path / "s.sqlite3"))
    await store.open()
    try:
        (existing,) = await store.enqueue_events([make_event()])
        link = make_link()
        with pytest.raises(ConflictError):
            await store.create_link(
                link, "nk", None, events=[dataclasses.replace(make_event(), id=existing.id)]
            )
        assert await store.get_link(link.id) is None
        assert await store.get_link_by_slug(link.slug) is None
        assert await store.list_outbox("tn_a") == [existing]
    finally:
        await store.close()
    conn = sqlite3.connect(str(tmp_path / "s.sqlite3"))
    try:
        assert conn.execute("SELECT COUNT(*) FROM links").fetchone() == (0,)
        assert conn.execute("SELECT COUNT(*) FROM slugs").fetchone() == (0,)
        assert conn.execute("SELECT COUNT(*) FROM outbox").fetchone() == (1,)
    finally:
        conn.close()


# --- guest invites -------------------------------------------------------------------
async def test_guest_invites(store: Store) -> None:
    link = make_link()
    await store.create_link(link, None, None)
    i2 = GuestInvite(
        id="gi_2", link_id=link.id, tenant_id="tn_a", token="tok2", max_guests=2, created_at=2.0
    )
    i1 = GuestInvite(
        id="gi_1", link_id=link.id, tenant_id="tn_a", token="tok1", max_guests=5, created_at=1.0
    )
    other = GuestInvite(
        id="gi_3", link_id="lnk_other", tenant_id="tn_a", token="tok3", max_guests=1, created_at=0.5
    )
    for invite in (i2, i1, other):
        await store.add_guest_invite(invite)
    assert await store.get_guest_invite("tok1") == i1
    assert await store.get_guest_invite("tok3") == other
    assert await store.get_guest_invite("nope") is None
    assert await store.list_guest_invites(link.id) == [i1, i2]
    assert await store.list_guest_invites("lnk_none") == []
    with pytest.raises(ConflictError):
        await store.add_guest_invite(dataclasses.replace(i1, id="gi_9"))  # same token
    with pytest.raises(ConflictError):
        await store.add_guest_invite(dataclasses.replace(i1, token="tok9"))  # same id
    assert await store.get_guest_invite("tok9") is None
    assert await store.list_guest_invites(link.id) == [i1, i2]


# --- webhooks ------------------------------------------------------------------------
async def test_webhook_endpoints(store: Store) -> None:
    w1 = WebhookEndpoint(
        id="wh_1", tenant_id="tn_a", url="https://a/h", secret="s1", events=(), created_at=1.0
    )
    w2 = WebhookEndpoint(
        id="wh_2",
        tenant_id="tn_a",
        url="https://b/h",
        secret="s2",
        events=("room.started", "room.ended"),
        created_at=2.0,
    )
    w3 = WebhookEndpoint(
        id="wh_3", tenant_id="tn_b", url="https://c/h", secret="s3", events=(), created_at=0.5
    )
    for endpoint in (w2, w3, w1):
        await store.add_webhook_endpoint(endpoint)
    assert await store.get_webhook_endpoint("wh_2") == w2  # events come back as a tuple
    assert await store.get_webhook_endpoint("nope") is None
    assert await store.list_webhook_endpoints("tn_a") == [w1, w2]
    assert await store.list_webhook_endpoints("tn_b") == [w3]

    assert await store.disable_webhook_endpoint("wh_1", 10.0) is True
    assert await store.disable_webhook_endpoint("wh_1", 20.0) is True
    assert await store.get_webhook_endpoint("wh_1") == dataclasses.replace(w1, disabled_at=10.0)
    assert await store.disable_webhook_endpoint("nope", 10.0) is False
    assert [w.disabled_at for w in await store.list_webhook_endpoints("tn_a")] == [10.0, None]
    with pytest.raises(ConflictError):
        await store.add_webhook_endpoint(w1)


# --- outbox --------------------------------------------------------------------------
async def test_enqueue_assigns_increasing_seq(store: Store) -> None:
    assert await store.enqueue_events([]) == []
    batch = [make_event(ordering_key=f"lnk_{i % 2}") for i in range(3)]
    out = await store.enqueue_events(batch)
    assert [dataclasses.replace(e, seq=0) for e in out] == batch
    seqs = [e.seq for e in out]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3 and seqs[0] > 0
    more = await store.enqueue_events([make_event(endpoint_id="wh_2")])
    assert more[0].seq > seqs[-1]
    listed = await store.list_outbox("tn_a")
    assert listed == [*more, *out[::-1]]  # newest first, with their seq


async def test_enqueue_duplicate_id_conflicts_atomically(store: Store) -> None:
    first = (await store.enqueue_events([make_event()]))[0]
    with pytest.raises(ConflictError):
        await store.enqueue_events([make_event(), dataclasses.replace(make_event(), id=first.id)])
    with pytest.raises(ConflictError):
        twin = make_event()
        await store.enqueue_events([twin, twin])
    assert await store.list_outbox("tn_a") == [first]


async def test_concurrent_enqueues_get_distinct_increasing_seqs(store: Store) -> None:
    results = await asyncio.gather(
        *(store.enqueue_events([make_event(), make_event()]) for _ in range(10))
    )
    seqs = [e.seq for batch in results for e in batch]
    assert len(set(seqs)) == 20
    assert all(batch[0].seq < batch[1].seq for batch in results)


async def test_due_events_offers_only_queue_heads(store: Store) -> None:
    a1, a2, a3 = await store.enqueue_events(
        [make_event("wh_1", "lnk_a") for _ in range(3)]
    )  # one queue
    (b1,) = await store.enqueue_events([make_event("wh_1", "lnk_b")])
    (c1,) = await store.enqueue_events([make_event("wh_2", "lnk_a")])  # other endpoint
    due = await store.due_events(now=10.0)
    assert sorted(e.id for e in due) == sorted([a1.id, b1.id, c1.id])
    assert await store.due_events(now=10.0, limit=2) == due[:2]
    assert await store.due_events(now=10.0, limit=0) == []

    # Delivering the head makes the next one of that queue due; the others are unchanged.
    await store.record_attempt(DeliveryAttempt(a1.id, 1, 11.0, 200, None, 5.0), True, 0.0, None)
    due = await store.due_events(now=12.0)
    assert sorted(e.id for e in due) == sorted([a2.id, b1.id, c1.id])
    await store.record_attempt(DeliveryAttempt(a2.id, 1, 13.0, 204, None, 5.0), True, 0.0, None)
    await store.record_attempt(DeliveryAttempt(a3.id, 1, 14.0, 200, None, 5.0), True, 0.0, None)
    due = await store.due_events(now=15.0)
    assert sorted(e.id for e in due) == sorted([b1.id, c1.id])
    delivered = await store.list_outbox("tn_a")
    by_id = {e.id: e for e in delivered}
    assert by_id[a1.id].delivered_at == 11.0 and by_id[a1.id].attempts == 1
    assert by_id[a3.id].delivered_at == 14.0
    assert by_id[b1.id].delivered_at is None


async def test_due_events_respects_next_attempt_at(store: Store) -> None:
    (early,) = await store.enqueue_events([make_event("wh_1", "q1", next_attempt_at=5.0)])
    (late,) = await store.enqueue_events([make_event("wh_1", "q2", next_attempt_at=50.0)])
    # Behind a head that is not due yet, even a due event waits (per-room order).
    (behind,) = await store.enqueue_events([make_event("wh_1", "q2", next_attempt_at=0.0)])
    assert await store.due_events(now=4.9) == []
    assert await store.due_events(now=5.0) == [early]
    assert await store.due_events(now=100.0) == [early, late]
    assert behind.id not in {e.id for e in await store.due_events(now=1e12)}


async def test_failed_attempt_reschedules(store: Store) -> None:
    head, second = await store.enqueue_events([make_event(), make_event()])
    await store.record_attempt(
        DeliveryAttempt(head.id, 1, 10.0, 500, "HTTP 500", 12.5), False, 40.0, "HTTP 500"
    )
    assert await store.due_events(now=39.0) == []  # the head waits; the queue behind it too
    (due,) = await store.due_events(now=40.0)
    assert due.id == head.id
    assert due.attempts == 1 and due.next_attempt_at == 40.0 and due.last_error == "HTTP 500"
    assert due.delivered_at is None
    await store.record_attempt(
        DeliveryAttempt(head.id, 2, 40.0, None, "timeout", 10000.0), False, 100.25, "timeout"
    )
    (due,) = await store.due_events(now=1000.0)
    assert (due.id, due.attempts, due.next_attempt_at, due.last_error) == (
        head.id,
        2,
        100.25,
        "timeout",
    )
    await store.record_attempt(DeliveryAttempt(head.id, 3, 101.0, 200, None, 3.0), True, 0.0, None)
    (due,) = await store.due_events(now=1000.0)
    assert due == second

    attempts = await store.list_attempts(head.id)
    assert attempts == [
        DeliveryAttempt(head.id, 1, 10.0, 500, "HTTP 500", 12.5),
        DeliveryAttempt(head.id, 2, 40.0, None, "timeout", 10000.0),
        DeliveryAttempt(head.id, 3, 101.0, 200, None, 3.0),
    ]
    assert await store.list_attempts(second.id) == []
    assert await store.list_attempts("evt_missing") == []
    done = await store.list_outbox("tn_a", limit=1000)
    assert [e.id for e in done] == [second.id, head.id]
    assert done[1].delivered_at == 101.0 and done[1].attempts == 3 and done[1].last_error is None


async def test_attempt_on_a_non_head_event_keeps_order(store: Store) -> None:
    head, second = await store.enqueue_events([make_event(), make_event()])
    await store.record_attempt(DeliveryAttempt(second.id, 1, 1.0, 500, "x", 1.0), False, 5.0, "x")
    assert [e.id for e in await store.due_events(now=100.0)] == [head.id]


async def test_attempt_after_delivery_keeps_it_delivered(store: Store) -> None:
    (ev,) = await store.enqueue_events([make_event()])
    await store.record_attempt(DeliveryAttempt(ev.id, 1, 1.0, 200, None, 1.0), True, 0.0, None)
    await store.record_attempt(DeliveryAttempt(ev.id, 2, 2.0, 500, "late", 1.0), False, 9.0, "x")
    (stored,) = await store.list_outbox("tn_a")
    assert stored.delivered_at == 1.0 and stored.attempts == 2
    assert await store.due_events(now=100.0) == []
    assert len(await store.list_attempts(ev.id)) == 2


async def test_record_attempt_for_missing_event_conflicts(store: Store) -> None:
    with pytest.raises(ConflictError):
        await store.record_attempt(
            DeliveryAttempt("evt_missing", 1, 1.0, 200, None, 1.0), True, 0.0, None
        )


async def test_list_outbox(store: Store) -> None:
    events = await store.enqueue_events(
        [make_event(ordering_key=f"q{i}") for i in range(5)] + [make_event(tenant_id="tn_b")]
    )
    mine = events[:5]
    await store.record_attempt(DeliveryAttempt(mine[1].id, 1, 1.0, 200, None, 1.0), True, 0.0, None)
    await store.record_attempt(DeliveryAttempt(mine[3].id, 1, 1.0, 200, None, 1.0), True, 0.0, None)
    listed = await store.list_outbox("tn_a")
    assert [e.id for e in listed] == [e.id for e in mine[::-1]]
    assert [e.id for e in await store.list_outbox("tn_a", limit=2)] == [mine[4].id, mine[3].id]
    pending = await store.list_outbox("tn_a", undelivered_only=True)
    assert [e.id for e in pending] == [mine[4].id, mine[2].id, mine[0].id]
    assert [e.id for e in await store.list_outbox("tn_a", undelivered_only=True, limit=1)] == [
        mine[4].id
    ]
    assert [e.id for e in await store.list_outbox("tn_b")] == [events[5].id]
    assert await store.list_outbox("tn_none") == []
    assert pending[0] == mine[4]  # payload (with its empty list and dict) round-trips


# --- meeting reports -----------------------------------------------------------------
def make_report(**kw: Any) -> dict[str, Any]:
    report: dict[str, Any] = {
        "room": "lnk_r",
        "participants": [
            {"name": "Ada", "joined": 1.5, "speaking_s": 12.25, "tags": ["host", None]},
            {"name": "Bob", "joined": 2.0, "speaking_s": 0, "tags": []},
        ],
        "totals": {"speaking_s": 12.25, "by_minute": [[0, 1.0], [1, 0.5]], "empty": {}},
        "ok": True,
        "note": None,
    }
    report.update(kw)
    return report


async def test_meeting_report_round_trip(store: Store) -> None:
    report = make_report()
    await store.add_meeting_report("rep_1", "lnk_r", "tn_a", 100.0, report)
    assert await store.list_meeting_reports("lnk_r") == [report]
    assert await store.list_meeting_reports("lnk_none") == []


async def test_meeting_reports_newest_first_and_limit(store: Store) -> None:
    for i, finished_at in enumerate([30.0, 10.0, 50.0, 20.0, 40.0]):
        await store.add_meeting_report(
            f"rep_{i}", "lnk_r", "tn_a", finished_at, make_report(finished=finished_at)
        )
    listed = await store.list_meeting_reports("lnk_r")
    assert [r["finished"] for r in listed] == [50.0, 40.0, 30.0, 20.0, 10.0]
    limited = await store.list_meeting_reports("lnk_r", limit=2)
    assert [r["finished"] for r in limited] == [50.0, 40.0]
    assert await store.list_meeting_reports("lnk_r", limit=0) == []
    assert len(await store.list_meeting_reports("lnk_r", limit=100)) == 5
    # The default limit is 20.
    for i in range(25):
        await store.add_meeting_report(f"rep_more_{i}", "lnk_r", "tn_a", 100.0 + i, {"i": i})
    default = await store.list_meeting_reports("lnk_r")
    assert [r["i"] for r in default] == list(range(24, 4, -1))


async def test_meeting_reports_are_per_link(store: Store) -> None:
    await store.add_meeting_report("rep_a", "lnk_a", "tn_a", 1.0, {"link": "a"})
    await store.add_meeting_report("rep_b", "lnk_b", "tn_a", 2.0, {"link": "b"})
    await store.add_meeting_report("rep_c", "lnk_c", "tn_b", 3.0, {"link": "c"})
    assert await store.list_meeting_reports("lnk_a") == [{"link": "a"}]
    assert await store.list_meeting_reports("lnk_b") == [{"link": "b"}]
    assert await store.list_meeting_reports("lnk_c") == [{"link": "c"}]


async def test_duplicate_meeting_report_id_conflicts(store: Store) -> None:
    await store.add_meeting_report("rep_dup", "lnk_a", "tn_a", 1.0, {"v": 1})
    with pytest.raises(ConflictError):
        await store.add_meeting_report("rep_dup", "lnk_a", "tn_a", 2.0, {"v": 2})
    with pytest.raises(ConflictError):  # ids are global, not per link
        await store.add_meeting_report("rep_dup", "lnk_b", "tn_b", 3.0, {"v": 3})
    assert await store.list_meeting_reports("lnk_a") == [{"v": 1}]
    assert await store.list_meeting_reports("lnk_b") == []


async def test_meeting_report_numbers_are_exact(store: Store) -> None:
    t = 1_712_345_678.123456
    later = math.nextafter(t, math.inf)  # one ulp apart: only exact scores order these
    earlier = math.nextafter(t, -math.inf)
    numbers = {
        "t": t,
        "tiny": 5e-324,
        "third": 1 / 3,
        "sum": 0.1 + 0.2,
        "big_int": 2**53 + 1,  # not representable as a double (Lua would round it)
        "huge_int": 10**20,
        "neg": -0.5,
        "int": 7,
        "float_int": 7.0,
    }
    await store.add_meeting_report("rep_mid", "lnk_r", "tn_a", t, {"at": t, **numbers})
    await store.add_meeting_report("rep_late", "lnk_r", "tn_a", later, {"at": later})
    await store.add_meeting_report("rep_early", "lnk_r", "tn_a", earlier, {"at": earlier})
    late, mid, early = await store.list_meeting_reports("lnk_r")
    assert late == {"at": later} and early == {"at": earlier}
    assert mid == {"at": t, **numbers}
    for name, value in numbers.items():
        assert type(mid[name]) is type(value) and mid[name] == value, name


async def test_meeting_report_nested_values_preserved(store: Store) -> None:
    report: dict[str, Any] = {
        "a": {"b": {"c": [1, [2, [3, {"d": []}]], {}]}},
        "unicode": "naïve ☃ \u2028",
        "list_of_dicts": [{"x": None}, {"y": False}, {"z": ""}],
        "empty_list": [],
        "empty_dict": {},
    }
    await store.add_meeting_report("rep_nested", "lnk_n", "tn_a", 5.0, report)
    (stored,) = await store.list_meeting_reports("lnk_n")
    assert stored == report
    assert stored["empty_list"] == [] and stored["empty_dict"] == {}


# --- factory -------------------------------------------------------------------------
def test_create_store(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    sqlite = create_store("sqlite", sqlite_path=path, redis_url="redis://127.0.0.1:1/0")
    assert isinstance(sqlite, SqliteStore) and sqlite.path == path
    memory = create_store("memory", sqlite_path=path, redis_url="redis://127.0.0.1:1/0")
    assert isinstance(memory, SqliteStore) and memory.path == ":memory:"
    redis = create_store("redis", sqlite_path=path, redis_url="redis://127.0.0.1:1/0")
    assert isinstance(redis, RedisStore) and redis.url == "redis://127.0.0.1:1/0"
    with pytest.raises(ValueError):
        create_store("mongo", sqlite_path=path, redis_url="")


async def test_memory_store_works() -> None:
    store = create_store("memory", sqlite_path="unused", redis_url="unused")
    await store.open()
    try:
        link = make_link()
        assert await store.create_link(link, "nk", None) == (link, True)
        assert await store.get_link_by_slug(link.host_slug) == link
    finally:
        await store.close()


# --- sqlite schema migration ---------------------------------------------------------
async def test_sqlite_migrates_a_version_1_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "old.sqlite3")
    # The previous code: only the first migration, schema version 1.
    with monkeypatch.context() as m:
        m.setattr(sqlite_schema, "MIGRATIONS", sqlite_schema.MIGRATIONS[:1])
        m.setattr(sqlite_schema, "SCHEMA_VERSION", 1)
        old = SqliteStore(path)
        await old.open()
        link = make_link()
        tenant = Tenant(id="tn_a", name="A", created_at=1.0)
        await old.create_tenant(tenant)
        (event,) = await old.enqueue_events([make_event()])
        await old.close()
    # the link as version-1 code wrote it (no updated_at column yet)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO links (id, tenant_id, slug, host_slug, natural_key, idempotency_key,"
            " event_id, calendar_id, user_id, created_at, version, data)"
            " VALUES (?, ?, ?, ?, ?, NULL, NULL, NULL, NULL, ?, ?, ?)",
            (
                link.id,
                link.tenant_id,
                link.slug,
                link.host_slug,
                "nk-old",
                link.created_at,
                link.version,
                sqlite_base.dumps(link),
            ),
        )
        conn.executemany(
            "INSERT INTO slugs (slug, link_id) VALUES (?, ?)",
            [(link.slug, link.id), (link.host_slug, link.id)],
        )
    conn.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "meeting_reports" not in tables
    conn.close()

    assert sqlite_schema.SCHEMA_VERSION == 4
    store = SqliteStore(path)
    await store.open()
    try:
        assert await store.get_tenant("tn_a") == tenant
        assert await store.get_link(link.id) == link
        assert await store.get_link_by_slug(link.host_slug) == link
        assert await store.create_link(make_link(), "nk-old", None) == (link, False)
        assert await store.list_outbox("tn_a") == [event]
        # 2 -> 3: the updated_at column was filled from the stored records
        since = link.updated_at
        assert await store.list_links_page("tn_a", updated_since=since) == [link]
        assert await store.list_links_page("tn_a", updated_since=since + 0.5) == []
        await store.add_meeting_report("rep_1", link.id, "tn_a", 2.5, make_report())
        await store.add_meeting_report("rep_2", link.id, "tn_a", 3.5, {"n": 2})
        assert await store.list_meeting_reports(link.id) == [{"n": 2}, make_report()]
        with pytest.raises(ConflictError):
            await store.add_meeting_report("rep_1", link.id, "tn_a", 4.0, {})
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(4,)]
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {
            "meeting_reports_by_link",
            "links_by_tenant_updated",
            "recordings_by_link",
        } <= indexes
    conn.close()

    # Reopening an up-to-date database migrates nothing and keeps the reports.
    store = SqliteStore(path)
    await store.open()
    try:
        assert len(await store.list_meeting_reports(link.id)) == 2
    finally:
        await store.close()


async def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = str(tmp_path / "new.sqlite3")
    store = SqliteStore(path)
    await store.open()
    await store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (sqlite_schema.SCHEMA_VERSION + 1,))
    conn.close()
    with pytest.raises(RuntimeError, match="newer"):
        await SqliteStore(path).open()


# --- durability ----------------------------------------------------------------------
_SQLITE_WRITER = textwrap.dedent(
    """
    import asyncio, sys, time
    from mediaserver.state import Link, SqliteStore

    async def main() -> None:
        store = SqliteStore(sys.argv[1])
        await store.open()
        link = Link(id="lnk_durable", tenant_id="tn_a", kind="event", slug="s-durable",
                    host_slug="h-durable", created_at=1.0)
        await store.create_link(link, "nk-durable", None)
        print("ok", flush=True)
        time.sleep(60)  # blocks the loop: close() never runs

    asyncio.run(main())
    """
)


async def test_sqlite_acknowledged_write_survives_sigkill(tmp_path: Path) -> None:
    path = str(tmp_path / "db" / "state.sqlite3")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _SQLITE_WRITER,
        path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if line != b"ok\n":
            assert proc.stderr is not None
            err = await proc.stderr.read()
            pytest.fail(f"writer failed: {line!r} {err.decode(errors='replace')}")
    finally:
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL

    store = SqliteStore(path)
    await store.open()
    try:
        link = await store.get_link("lnk_durable")
        assert link is not None and link.slug == "s-durable"
        assert await store.get_link_by_slug("h-durable") == link
        assert await store.create_link(make_link(), "nk-durable", None) == (link, False)
    finally:
        await store.close()


async def test_redis_acknowledged_write_survives_server_sigkill(
    redis_server: RedisServer,
) -> None:
    prefix = f"dur{uuid.uuid4().hex[:6]}:"
    store = RedisStore(redis_server.url, prefix=prefix)
    await store.open()
    link = make_link()
    (event,) = await store.enqueue_events([make_event()])
    await store.create_link(link, "nk", "ik")
    await store.close()

    redis_server.kill()
    redis_server.start()  # same port and directory: replays the AOF

    store = RedisStore(redis_server.url, prefix=prefix)
    await store.open()
    try:
        assert await store.get_link(link.id) == link
        assert await store.get_link_by_slug(link.host_slug) == link
        assert await store.create_link(make_link(), None, "ik") == (link, False)
        assert await store.due_events(now=1.0) == [event]
        (after,) = await store.enqueue_events([make_event()])
        assert after.seq > event.seq
    finally:
        await store.close()


# --- issue 17: calendar payloads ------------------------------------------------------


async def test_calendar_fields_round_trip(store: Store) -> None:
    """Unknown event fields (Google's attendees, Cronofy's location), a series' rule and
    its per-occurrence overrides, and a tenant's own rate limit are stored exactly, and
    a re-sent event replaces them through the compare-and-set."""
    tenant = Tenant(
        id=uid("tn"), name="Bulk", created_at=1.0, rate_limit_per_minute=6000, rate_limit_burst=9
    )
    await store.create_tenant(tenant)
    assert await store.get_tenant(tenant.id) == tenant
    event = {
        "id": "g1",
        "start": {"dateTime": "2030-03-19T10:00:00+01:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2030-03-19T10:15:00+01:00", "timeZone": "Europe/Berlin"},
        "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=7", "EXDATE;TZID=Europe/Berlin:20300409T100000"],
        "attendees": [{"email": "a@example.com", "displayName": "Ada", "responseStatus": "ok"}],
        "location": {"description": "Board room"},
        "sequence": 3,
    }
    overrides = {
        "2030-04-16T08:00:00Z": {"start": 1902657600.0, "end": 1902658500.5, "cancelled": False}
    }
    link = make_link(tenant.id, event_id="g1", event=event, overrides=overrides)
    stored, created = await store.create_link(link, f"event\x00\x00g1\x00{tenant.id}", None)
    assert created and stored == link
    assert await store.get_link(link.id) == link
    more = {**overrides, "2030-04-23T08:00:00Z": {"start": 1.0, "end": 1.0, "cancelled": True}}
    moved = dataclasses.replace(link, event={**event, "sequence": 4}, overrides=more)
    await store.update_link(moved, link.version)
    got = await store.get_link(link.id)
    assert got == dataclasses.replace(moved, version=link.version + 1)
    (found,) = await store.find_links(tenant.id, event_id="g1")
    assert found.overrides == more and found.event["attendees"] == event["attendees"]


def make_recording(rec_id: str, link_id: str = "lnk_r", started_at: float = 100.0, **kw):
    manifest = {
        "id": rec_id,
        "link_id": link_id,
        "tenant_id": "tn_a",
        "state": "recording",
        "started_at": started_at,
        "tracks": [],
    }
    manifest.update(kw)
    return manifest


async def test_recording_put_replace_get_list_delete(store: Store) -> None:
    first = make_recording("RE01", started_at=100.25)
    await store.put_recording(first)
    assert await store.get_recording("RE01") == first
    ready = make_recording(
        "RE01",
        started_at=100.25,
        state="ready",
        tracks=[{"file": "a.webm", "start_offset_seconds": 0.0957, "duration_seconds": 4.98}],
    )
    await store.put_recording(ready)  # replaced, not added
    assert await store.get_recording("RE01") == ready
    assert await store.list_recordings("lnk_r") == [ready]
    assert await store.list_recordings("lnk_other") == []
    assert await store.delete_recording("RE01") is True
    assert await store.delete_recording("RE01") is False
    assert await store.get_recording("RE01") is None
    assert await store.list_recordings("lnk_r") == []


async def test_recording_deleted_once_and_moved_between_links(store: Store) -> None:
    await store.put_recording(make_recording("RE02"))
    results = await asyncio.gather(*(store.delete_recording("RE02") for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]  # exactly one delete happened
    moved = make_recording("RE03", link_id="lnk_b")
    await store.put_recording(make_recording("RE03", link_id="lnk_a"))
    await store.put_recording(moved)
    assert await store.list_recordings("lnk_a") == []
    assert await store.list_recordings("lnk_b") == [moved]


async def test_recordings_newest_first_and_limit(store: Store) -> None:
    for i, started in enumerate([30.0, 10.0, 50.0, 20.0]):
        await store.put_recording(make_recording(f"RE{i}", started_at=started))
    await store.put_recording(make_recording("REx", link_id="lnk_other", started_at=60.0))
    listed = await store.list_recordings("lnk_r")
    assert [r["started_at"] for r in listed] == [50.0, 30.0, 20.0, 10.0]
    assert [r["id"] for r in await store.list_recordings("lnk_r", limit=2)] == ["RE2", "RE0"]
    assert await store.list_recordings("lnk_r", limit=0) == []
