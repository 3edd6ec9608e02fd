"""The link API end to end: real HTTP, real signalling joins, OpenAPI-checked responses."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
from api_client import ApiClient
from server_helpers import at, event, make_config, serving, slug_of, start_server

from linkapi.secrets_ import JoinClaims, sign_join_token
from mediaserver.app_keys import LINKS, STORE
from mediaserver.client.sdk import ClientError

pytestmark = pytest.mark.integration


@pytest.fixture
async def api_server(request):
    async with serving(make_config(), getattr(request, "param", "memory")) as srv:
        service = srv.app[LINKS]
        tenant, key = await service.create_tenant("Acme Calendar")
        _, other_key = await service.create_tenant("Other Co")
        api = ApiClient(srv.http_url, key)
        api.tenant = tenant
        api.other_key = other_key
        try:
            yield srv, api
        finally:
            await api.close()


async def count_links(srv, tenant_id: str) -> int:
    return len(await srv.app[STORE].find_links(tenant_id, limit=500))


@pytest.mark.parametrize("api_server", ["memory", "redis"], indirect=True)
async def test_calendar_life_cycle(api_server, clients):
    srv, api = api_server
    # create
    status, link, _ = await api.post("/v1/links", {"event": event(calendar_id="cal-1")})
    assert status == 201
    assert link["join_url"].startswith(srv.http_url + "/j/")
    assert link["host_url"] != link["join_url"]
    assert len(slug_of(link["join_url"])) >= 22  # >= 128 random bits
    assert "CONFERENCE;VALUE=URI;FEATURE=VIDEO" in link["invitation"]["ical"]["conference"]
    assert link["join_url"] in link["invitation"]["text"]
    assert link["status"] == "active"
    # repeat create: same link, 200
    status, again, _ = await api.post("/v1/links", {"event": event(calendar_id="cal-1")})
    assert status == 200 and again["id"] == link["id"] and again["join_url"] == link["join_url"]
    # another recurrence is another link
    status, other, _ = await api.post(
        "/v1/links", {"event": event(calendar_id="cal-1", recurrence_id="2026-12-01")}
    )
    assert status == 201 and other["id"] != link["id"]
    # find
    status, found, _ = await api.get("/v1/links?event_id=evt-1")
    assert status == 200 and {x["id"] for x in found["links"]} == {link["id"], other["id"]}
    # move the event: the window moves with it
    status, moved, _ = await api.patch(
        f"/v1/links/{link['id']}", {"event": {"start": at(60), "end": at(120)}}
    )
    assert status == 200 and moved["valid_from"] != link["valid_from"]
    assert moved["join_url"] == link["join_url"]
    # moved to the future: too early to join now
    early = srv.client("early")
    clients.append(early)
    await early.connect()
    with pytest.raises(ClientError) as err:
        await early.request({"type": "join", "link": slug_of(link["join_url"]), "name": "Ann"})
    assert err.value.code == "link_not_open"
    assert early.errors[-1]["opens_at"] == moved["valid_from"]
    # back to now
    status, link, _ = await api.patch(
        f"/v1/links/{link['id']}", {"event": {"start": at(-1), "end": at(30)}}
    )
    assert status == 200
    # guest invite
    status, invite, _ = await api.post(f"/v1/links/{link['id']}/guest-invites", {"max_guests": 1})
    assert status == 201 and "invite=" in invite["url"]
    # join tokens
    status, host_tok, _ = await api.post(
        f"/v1/links/{link['id']}/join-tokens", {"user_id": "u-1", "name": "Hana", "role": "host"}
    )
    assert status == 201 and host_tok["role"] == "host"
    status, member_tok, _ = await api.post(
        f"/v1/links/{link['id']}/join-tokens", {"user_id": "u-2", "name": "Max", "role": "member"}
    )
    slug = slug_of(link["join_url"])
    host = srv.client("x")
    member = srv.client("x")
    guest = srv.client("x")
    named = srv.client("Gail")
    clients.extend([host, member, guest, named])
    for c in (host, member, guest, named):
        await c.connect()
    joined = await host.request({"type": "join", "link": slug, "token": host_tok["token"]})
    assert joined["role"] == "host"
    joined = await member.request({"type": "join", "link": slug, "token": member_tok["token"]})
    assert joined["role"] == "member"
    invite_token = invite["url"].split("invite=", 1)[1]
    # guests wait in the lobby (the tenant default policy) until the host admits them
    waiting = await guest.request({"type": "join", "link": slug, "invite": invite_token})
    assert waiting["type"] == "lobby" and waiting["host_present"] is True
    waiting = await named.request({"type": "join", "link": slug, "name": "Gail"})
    assert waiting["type"] == "lobby"
    await host.request({"type": "admit_all"})
    for g in (guest, named):
        joined = (
            await g.wait_message("joined")
            if not any(e["type"] == "joined" for e in g.events)
            else next(e for e in g.events if e["type"] == "joined")
        )
        assert joined["role"] == "guest"
    room = srv.rooms.rooms[link["id"]]
    names = {p.name: p.role for p in room.participants.values()}
    assert names == {"Hana": "host", "Max": "member", "Guest": "guest", "Gail": "guest"}
    # the invite admits one guest at a time
    second = srv.client("x")
    clients.append(second)
    await second.connect()
    with pytest.raises(ClientError) as err:
        await second.request({"type": "join", "link": slug, "invite": invite_token})
    assert err.value.code == "invite_full"
    # cancel: link revoked, the running meeting ends with a notice
    status, revoked, _ = await api.delete(f"/v1/links/{link['id']}")
    assert status == 200 and revoked["status"] == "revoked" and revoked["revoked_at"]
    for c in (host, member, guest, named):
        msg = (
            await c.wait_message("room_closed", timeout=5)
            if not any(e["type"] == "room_closed" for e in c.events)
            else next(e for e in c.events if e["type"] == "room_closed")
        )
        assert msg["reason"] == "link_revoked"
    late = srv.client("late")
    clients.append(late)
    await late.connect()
    with pytest.raises(ClientError) as err:
        await late.request({"type": "join", "link": slug, "name": "Lou"})
    assert err.value.code == "link_revoked"
    with pytest.raises(ClientError) as err:
        await late.request({"type": "join", "link": slug_of(link["host_url"])})
    assert err.value.code == "link_revoked"
    # the revoked link still reads back
    status, got, _ = await api.get(f"/v1/links/{link['id']}")
    assert status == 200 and got["status"] == "revoked"


async def test_tokens_are_checked(api_server, clients):
    srv, api = api_server
    _, a, _ = await api.post("/v1/links", {"event": event("a")})
    _, b, _ = await api.post("/v1/links", {"event": event("b")})
    _, tok, _ = await api.post(
        f"/v1/links/{a['id']}/join-tokens", {"user_id": "u", "name": "U", "role": "host"}
    )
    service = srv.app[LINKS]
    expired = sign_join_token(
        service._token_secret,
        JoinClaims(a["id"], "u", "U", "host", time.time() - 1, "j1"),
    )
    forged = sign_join_token(
        b"not the server secret" * 2, JoinClaims(a["id"], "u", "U", "host", time.time() + 60, "j2")
    )
    head, payload, mac = tok["token"].split(".")
    tampered = f"{head}.{payload[:-2]}AA.{mac}"
    c = srv.client("x")
    clients.append(c)
    await c.connect()
    cases = [
        (slug_of(b["join_url"]), tok["token"], "another link"),
        (slug_of(a["join_url"]), expired, "expired"),
        (slug_of(a["join_url"]), forged, "signature"),
        (slug_of(a["join_url"]), tampered, ""),
        (slug_of(a["join_url"]), "garbage", "malformed"),
    ]
    for slug, token, words in cases:
        with pytest.raises(ClientError) as err:
            await c.request({"type": "join", "link": slug, "token": token})
        assert err.value.code == "invalid_token", (words, err.value)
        assert words in err.value.message
    assert not srv.rooms.rooms.get(a["id"]) or not srv.rooms.rooms[a["id"]].participants
    with pytest.raises(ClientError) as err:
        await c.request({"type": "join", "link": "A" * 27, "name": "N"})
    assert err.value.code == "link_not_found"
    with pytest.raises(ClientError) as err:
        await c.request({"type": "join", "link": slug_of(a["join_url"])})
    assert err.value.code == "name_required"


async def test_window_and_explicit_profile(api_server, clients):
    srv, api = api_server
    _, ended, _ = await api.post(
        "/v1/links",
        {"event": event("past", start=-300, end=-200), "options": {"grace_after_minutes": 30}},
    )
    _, explicit, _ = await api.post(
        "/v1/links",
        {
            "event": event("ext"),
            "conferencing": {
                "profile": "explicit",
                "join_url": "https://meet.example.com/abc",
                "provider_description": "Example Meet",
            },
        },
    )
    assert explicit["join_url"] == "https://meet.example.com/abc"
    assert explicit["host_url"] is None and explicit["profile"] == "explicit"
    assert "Example Meet" in explicit["invitation"]["ical"]["conference"]
    c = srv.client("x")
    clients.append(c)
    await c.connect()
    with pytest.raises(ClientError) as err:
        await c.request({"type": "join", "link": slug_of(ended["join_url"]), "name": "N"})
    assert err.value.code == "link_ended" and "closes_at" in c.errors[-1]


async def test_personal_room(api_server, clients):
    srv, api = api_server
    status, room, _ = await api.put(
        "/v1/users/user-7/personal-room", {"display_name": "Ada's room"}
    )
    assert status == 201 and room["kind"] == "personal" and room["valid_from"] is None
    status, same, _ = await api.put("/v1/users/user-7/personal-room")
    assert status == 200 and same["id"] == room["id"] and same["join_url"] == room["join_url"]
    status, rotated, _ = await api.post("/v1/users/user-7/personal-room/rotate")
    assert status == 200 and rotated["id"] == room["id"]
    assert rotated["join_url"] != room["join_url"] and rotated["host_url"] != room["host_url"]
    c = srv.client("x")
    clients.append(c)
    await c.connect()
    with pytest.raises(ClientError) as err:
        await c.request({"type": "join", "link": slug_of(room["join_url"]), "name": "N"})
    assert err.value.code == "link_not_found"
    joined = await c.request({"type": "join", "link": slug_of(rotated["host_url"])})
    assert joined["role"] == "host"
    status, _, _ = await api.post("/v1/users/nobody/personal-room/rotate")
    assert status == 404


async def test_bad_input_is_a_precise_problem_and_stores_nothing(api_server):
    srv, api = api_server
    tenant_id = api.tenant.id
    _, link, _ = await api.post("/v1/links", {"event": event("mine")})
    before = await count_links(srv, tenant_id)

    async def problem(method, path, body=None, *, status, field=None, **kw):
        code, body_out, headers = await api.request(method, path, json_body=body, **kw)
        assert code == status, body_out
        assert headers["Content-Type"].startswith("application/problem+json")
        assert body_out["status"] == status and body_out["type"].startswith("https://")
        if field:
            assert field in [e["field"] for e in body_out.get("errors", [])], body_out
        return body_out

    await problem("POST", "/v1/links", {}, status=422, field="event")
    await problem("POST", "/v1/links", {"event": {"id": "x"}}, status=422, field="event.start")
    await problem(
        "POST", "/v1/links", {"event": {**event("x"), "start": 5}}, status=422, field="event.start"
    )
    await problem(
        "POST",
        "/v1/links",
        {"event": {**event("x"), "start": "tomorrow"}},
        status=422,
        field="event.start",
    )
    await problem(
        "POST", "/v1/links", {"event": event("x", start=60, end=30)}, status=422, field="event.end"
    )
    await problem(
        "POST", "/v1/links", {"event": event("x"), "colour": "red"}, status=422, field="colour"
    )
    await problem(
        "POST",
        "/v1/links",
        {"event": event("x"), "options": {"guest_policy": "maybe"}},
        status=422,
        field="options.guest_policy",
    )
    await problem(
        "POST",
        "/v1/links",
        {"event": {**event("x"), "start": "2026-01-01T10:00:00"}},
        status=422,
        field="event.start",
    )
    code, body, _ = await api.request(
        "POST", "/v1/links", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert code == 400 and body["type"].endswith("invalid-json")
    big = {"event": {**event("x"), "summary": "x" * 70_000}}
    await problem("POST", "/v1/links", big, status=413)
    # auth
    await problem("POST", "/v1/links", {"event": event("x")}, status=401, key=None)
    await problem(
        "POST",
        "/v1/links",
        {"event": event("x")},
        status=401,
        key="msk_0123456789abcdef_wrongsecret",
    )
    await problem("POST", "/v1/links", {"event": event("x")}, status=401, key="garbage")
    # another tenant's link is not found (not forbidden: no existence leak)
    await problem("GET", f"/v1/links/{link['id']}", status=404, key=api.other_key)
    await problem(
        "PATCH",
        f"/v1/links/{link['id']}",
        {"event": {"summary": "x"}},
        status=404,
        key=api.other_key,
    )
    await problem("DELETE", f"/v1/links/{link['id']}", status=404, key=api.other_key)
    await problem("GET", "/v1/links/lnk_doesnotexist", status=404)
    await problem("GET", "/v1/nowhere", status=404)
    await problem("PATCH", f"/v1/links/{link['id']}", {}, status=422)
    await problem(
        "POST",
        f"/v1/links/{link['id']}/join-tokens",
        {"user_id": "u", "name": "n", "role": "admin"},
        status=422,
        field="role",
    )
    await problem("GET", "/v1/links?limit=0", status=422, field="limit")
    assert await count_links(srv, tenant_id) == before
    # the other tenant sees none of ours
    code, body, _ = await api.get("/v1/links", key=api.other_key)
    assert code == 200 and body["links"] == []


async def test_idempotency_key(api_server):
    _, api = api_server
    headers = {"Idempotency-Key": "req-42"}
    s1, a, _ = await api.post("/v1/links", {"event": event("e1")}, headers=headers)
    s2, b, _ = await api.post("/v1/links", {"event": event("e1")}, headers=headers)  # a retry
    assert (s1, s2) == (201, 200) and a["id"] == b["id"]


async def test_revoked_key_stops_mints_but_links_keep_working(api_server, clients):
    srv, api = api_server
    _, link, _ = await api.post("/v1/links", {"event": event("k")})
    key_id = api.key.split("_")[1]
    await srv.app[STORE].revoke_api_key(key_id, time.time())
    code, body, _ = await api.post("/v1/links", {"event": event("k2")})
    assert code == 401 and "revoked" in body["detail"]
    c = srv.client("x")
    clients.append(c)
    await c.connect()
    reply = await c.request({"type": "join", "link": slug_of(link["join_url"]), "name": "Ann"})
    assert reply["type"] == "lobby"  # the link works: Ann waits for a host
    assert len(srv.rooms.rooms[link["id"]].lobby.knocks) == 1


async def test_rate_limit():
    config = make_config()
    config = dataclasses.replace(
        config, linkapi=dataclasses.replace(config.linkapi, rate_limit_per_minute=3)
    )
    srv = await start_server(config)
    _, key = await srv.app[LINKS].create_tenant("T")
    api = ApiClient(srv.http_url, key)
    try:
        for left in (2, 1, 0):
            code, _, headers = await api.get("/v1/links")
            assert code == 200
            assert (headers["RateLimit-Limit"], headers["RateLimit-Remaining"]) == ("3", str(left))
            assert int(headers["RateLimit-Reset"]) >= 1
        code, body, headers = await api.get("/v1/links")
        assert code == 429 and int(headers["Retry-After"]) >= 1
        assert headers["RateLimit-Remaining"] == "0"
        assert body["type"].endswith("rate-limited")
    finally:
        await api.close()
        await srv.runner.cleanup()


async def test_rate_limit_per_tenant_with_a_burst():
    """A bulk import: a tenant with its own limit and burst gets them, others the
    configured ones; every response says how much is left, errors included."""
    config = make_config()
    config = dataclasses.replace(
        config,
        linkapi=dataclasses.replace(config.linkapi, rate_limit_per_minute=60, rate_limit_burst=5),
    )
    srv = await start_server(config)
    service = srv.app[LINKS]
    _, bulk_key = await service.create_tenant(
        "Bulk", rate_limit_per_minute=6000, rate_limit_burst=200
    )
    _, small_key = await service.create_tenant("Small")
    bulk, small = ApiClient(srv.http_url, bulk_key), ApiClient(srv.http_url, small_key)
    try:
        codes = [(await bulk.get("/v1/links"))[0] for _ in range(150)]
        assert codes == [200] * 150
        code, _, headers = await bulk.get("/v1/links/lnk_missing")
        assert code == 404 and headers["RateLimit-Limit"] == "200"
        codes = [(await small.get("/v1/links"))[0] for _ in range(6)]
        assert codes == [200] * 5 + [429]
    finally:
        await bulk.close()
        await small.close()
        await srv.runner.cleanup()


async def test_rate_limit_headers_on_aiohttp_own_answers(api_server):
    """Every authenticated answer carries the RateLimit-* headers, also the 404 and 405
    that aiohttp makes itself (ApiClient checks the documented ones on every call);
    a 401 has none."""
    _, api = api_server
    auth = {"Authorization": f"Bearer {api.key}"}
    for method, path, status in [
        ("GET", "/v1/no-such-path", 404),
        ("PUT", "/v1/webhooks/deliveries", 405),
        ("GET", "/v1/links", 200),
    ]:
        async with api.session.request(method, api.base_url + path, headers=auth) as resp:
            assert resp.status == status, (method, path)
            assert resp.headers["RateLimit-Limit"] == "600", (method, path)
            assert int(resp.headers["RateLimit-Remaining"]) < 600
            assert int(resp.headers["RateLimit-Reset"]) >= 1
    async with api.session.get(api.base_url + "/v1/links") as resp:
        assert resp.status == 401 and "RateLimit-Limit" not in resp.headers


async def test_openapi_document_is_served(api_server):
    _, api = api_server
    async with api.session.get(api.base_url + "/v1/openapi.json") as resp:
        doc = await resp.json()
    assert doc["openapi"].startswith("3.1") and "/v1/links" in doc["paths"]
    await asyncio.sleep(0)


async def test_idempotency_key_reused_for_another_event_is_a_conflict(api_server):
    _, api = api_server
    headers = {"Idempotency-Key": "k-1"}
    code, _, _ = await api.post("/v1/links", {"event": event("one")}, headers=headers)
    assert code == 201
    code, body, _ = await api.post(
        "/v1/links", {"event": event("two", calendar_id="c")}, headers=headers
    )
    assert code == 409 and body["type"].endswith("idempotency-key-reused")


async def test_room_tokens_for_the_tenants_ad_hoc_rooms(api_server, clients):
    srv, api = api_server
    body = {"user_id": "u-1", "name": " Hana ", "role": "host", "ttl_seconds": 60}
    status, minted, _ = await api.post("/v1/rooms/standup/tokens", body)
    assert status == 201 and minted["token"].startswith("mrt1.")
    assert (minted["room"], minted["room_id"]) == ("standup", f"{api.tenant.id}/standup")
    assert minted["role"] == "host"
    host = srv.client("ignored")
    clients.append(host)
    await host.connect()
    joined = await host.join("standup", minted["token"])
    assert (joined["room"], joined["role"]) == (minted["room_id"], "host")
    assert "lobby" in joined  # a host of an ad-hoc room moderates it
    # the path is checked before the body, then the body against the schema
    for room, field in (("lnk_abc", "room"), ("x" * 129, "room")):
        status, problem, _ = await api.post(f"/v1/rooms/{room}/tokens", {})
        assert status == 422 and problem["errors"][0]["field"] == field
    status, problem, _ = await api.post("/v1/rooms/r/tokens", {**body, "role": "owner"})
    assert status == 422 and problem["errors"][0]["field"] == "role"
    # off: the API mints nothing
    srv.app[LINKS].config = dataclasses.replace(
        srv.app[LINKS].config,
        rooms=dataclasses.replace(srv.app[LINKS].config.rooms, adhoc=False),
    )
    status, problem, _ = await api.post("/v1/rooms/standup/tokens", body)
    assert status == 409 and problem["type"].endswith("/adhoc-disabled")
