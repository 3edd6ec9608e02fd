"""A calendar sync loop (issue 17): 500 events imported, then the full list re-sent with
100 moved and 20 cancelled (``status: "cancelled"``); links, windows and webhooks end
up exactly right, and the same re-send again changes nothing. Both stores."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from api_client import ApiClient
from server_helpers import make_config, serving, webhook_sink

from mediaserver.app_keys import LINKS, STORE

pytestmark = pytest.mark.integration

BASE = datetime(2030, 5, 6, 8, 0, tzinfo=UTC)


def rfc(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def calendar(moved: set[int], cancelled: set[int]) -> list[dict[str, Any]]:
    events = []
    for i in range(500):
        start = BASE + timedelta(hours=i)
        if i in moved:
            start += timedelta(days=1, minutes=30)
        ev: dict[str, Any] = {
            "id": f"evt-{i:03d}",
            "calendar_id": "cal-sync",
            "summary": f"Meeting {i}" + (" (moved)" if i in moved else ""),
            "start": rfc(start),
            "end": rfc(start + timedelta(minutes=30)),
            "attendees": [{"email": f"p{i}@example.com", "responseStatus": "accepted"}],
        }
        if i in cancelled:
            ev["status"] = "cancelled"
        events.append(ev)
    return events


@pytest.fixture
async def sync_server(request):
    config = make_config()
    config = dataclasses.replace(
        config, linkapi=dataclasses.replace(config.linkapi, rate_limit_per_minute=100_000)
    )
    async with webhook_sink() as url, serving(config, request.param) as srv:
        tenant, key = await srv.app[LINKS].create_tenant("Sync Co")
        api = ApiClient(srv.http_url, key)
        code, _, _ = await api.post("/v1/webhooks", {"url": url})
        assert code == 201
        try:
            yield srv, api, tenant
        finally:
            await api.close()


async def send_all(api: ApiClient, events: list[dict[str, Any]]) -> Counter[int]:
    gate = asyncio.Semaphore(8)

    async def one(ev: dict[str, Any]) -> int:
        async with gate:
            code, body, _ = await api.post("/v1/links", {"event": ev})
            assert code in (200, 201), body
            return code

    return Counter(await asyncio.gather(*(one(ev) for ev in events)))


@pytest.mark.parametrize("sync_server", ["memory", "redis"], indirect=True)
async def test_full_resend_with_moves_and_cancellations(sync_server):
    srv, api, tenant = sync_server
    store = srv.app[STORE]

    async def outbox() -> Counter[str]:
        return Counter(e.type for e in await store.list_outbox(tenant.id, limit=100_000))

    assert await send_all(api, calendar(set(), set())) == Counter({201: 500})
    first = {ln.event_id: ln for ln in await store.find_links(tenant.id, limit=1000)}
    assert len(first) == 500
    assert await outbox() == Counter({"link.created": 500})

    moved = set(range(0, 500, 5))  # 100
    cancelled = set(range(3, 500, 25))  # 20, none of them moved
    assert len(moved) == 100 and len(cancelled) == 20 and not moved & cancelled
    resend = calendar(moved, cancelled)
    assert await send_all(api, resend) == Counter({200: 500})
    expected = Counter({"link.created": 500, "link.updated": 100, "link.revoked": 20})
    assert await outbox() == expected

    links = {ln.event_id: ln for ln in await store.find_links(tenant.id, limit=1000)}
    assert len(links) == 500
    for i, ev in enumerate(resend):
        link, before = links[ev["id"]], first[ev["id"]]
        assert (link.id, link.slug, link.host_slug) == (before.id, before.slug, before.host_slug)
        start = BASE + timedelta(hours=i)
        if i in moved:
            start += timedelta(days=1, minutes=30)
        assert link.valid_from == (start - timedelta(minutes=15)).timestamp()
        assert link.valid_until == (start + timedelta(minutes=90)).timestamp()
        assert (link.revoked_at is not None) == (i in cancelled)
        assert link.event["summary"].endswith("(moved)") == (i in moved)
    # per link: exactly the webhooks its history calls for
    per_link: dict[str, list[str]] = {}
    for e in await store.list_outbox(tenant.id, limit=100_000):
        per_link.setdefault(e.ordering_key, []).append(e.type)
    for i, ev in enumerate(resend):
        want = ["link.created"]
        want += ["link.updated"] if i in moved else []
        want += ["link.revoked"] if i in cancelled else []
        assert sorted(per_link[links[ev["id"]].id]) == sorted(want), i

    # the same full list again: nothing changes, no webhook
    versions = {k: ln.version for k, ln in links.items()}
    assert await send_all(api, resend) == Counter({200: 500})
    assert await outbox() == expected
    again = {ln.event_id: ln.version for ln in await store.find_links(tenant.id, limit=1000)}
    assert again == versions
