"""Calendar payloads as calendars send them (issue 17): re-sent events update their
link, Cronofy's and Google's shapes, unknown event fields, all-day and local times,
recurring series and the join check of their occurrences. Real HTTP, OpenAPI-checked
responses, SQLite-in-memory and Redis stores."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
from api_client import ApiClient
from server_helpers import at, event, make_config, serving, slug_of, webhook_sink

from linkapi.service import JoinRefusal
from mediaserver.app_keys import LINKS, STORE

pytestmark = pytest.mark.integration


@pytest.fixture
async def api_server(request):
    backend = getattr(request, "param", "memory")
    async with webhook_sink() as url, serving(make_config(), backend) as srv:
        tenant, key = await srv.app[LINKS].create_tenant("Acme Calendar")
        api = ApiClient(srv.http_url, key)
        api.tenant = tenant
        code, _, _ = await api.post("/v1/webhooks", {"url": url})
        assert code == 201
        try:
            yield srv, api
        finally:
            await api.close()


async def outbox_types(srv, tenant_id: str) -> Counter[str]:
    events = await srv.app[STORE].list_outbox(tenant_id, limit=100_000)
    return Counter(e.type for e in events)


def ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


BOTH = pytest.mark.parametrize("api_server", ["memory", "redis"], indirect=True)


@BOTH
async def test_resending_a_moved_event_updates_it_and_the_same_body_changes_nothing(api_server):
    srv, api = api_server
    code, link, _ = await api.post("/v1/links", {"event": event("e1", calendar_id="c")})
    assert code == 201
    moved = event("e1", start=120, end=180, calendar_id="c", summary="Moved sync")
    body = {"event": moved, "options": {"join_before_minutes": 5}}
    code, again, _ = await api.post("/v1/links", body)
    assert code == 200 and again["id"] == link["id"] and again["join_url"] == link["join_url"]
    assert again["event"]["summary"] == "Moved sync"
    assert again["valid_from"] == (
        datetime.fromtimestamp(ts(moved["start"]) - 300, UTC).isoformat().replace("+00:00", "Z")
    )
    assert again["options"]["join_before_minutes"] == 5
    assert (await outbox_types(srv, api.tenant.id))["link.updated"] == 1
    # the same body again: 200, the same state, no webhook
    code, third, _ = await api.post("/v1/links", body)
    assert code == 200 and third == again
    assert (await outbox_types(srv, api.tenant.id))["link.updated"] == 1
    # cancelled as Google and Cronofy say it: the link is revoked, once
    cancel = {"event": {"id": "e1", "calendar_id": "c", "status": "cancelled"}}
    code, revoked, _ = await api.post("/v1/links", cancel)
    assert code == 200 and revoked["status"] == "revoked"
    code, _, _ = await api.post("/v1/links", cancel)
    counts = await outbox_types(srv, api.tenant.id)
    assert code == 200 and counts["link.revoked"] == 1 and counts["link.updated"] == 1
    # a cancelled event we never saw: nothing to cancel
    code, problem, _ = await api.post("/v1/links", {"event": {"id": "nope", "status": "cancelled"}})
    assert code == 404, problem


CRONOFY = {
    "event_id": "qTtZdczOccgaPncGJaCiLg",
    "summary": "Board meeting",
    "description": "Discuss plans for the next quarter.",
    "start": {"time": "2030-08-05T15:30:00", "tzid": "Europe/London"},
    "end": {"time": "2030-08-05T17:00:00", "tzid": "Europe/London"},
    "tzid": "Europe/London",
    "location": {"description": "Board room"},
    "attendees": [{"email": "ada@example.com", "display_name": "Ada"}],
    "transparency": "opaque",
    "reminders": [{"minutes": 60}],
}
CRONOFY_UPSERT_ATTENDEES = {
    "invite": [{"email": "ada@example.com", "display_name": "Ada"}],
    "reject": [{"email": "bob@example.com"}],
}
CRONOFY_CONFERENCING = {
    "profile_id": "explicit",
    "provider_description": "Acme Meet",
    "join_url": "https://meet.example.com/board",
}

GOOGLE = {
    "kind": "calendar#event",
    "etag": '"3181161784712000"',
    "id": "4eahs9ghkhrvkld72hogu9ph3e",
    "status": "confirmed",
    "htmlLink": "https://www.google.com/calendar/event?eid=NGVhaHM5Z2hraHJ2a2xkNzJob2d1OXBoM2U",
    "created": "2030-01-01T10:00:00.000Z",
    "updated": "2030-01-02T10:00:00.000Z",
    "summary": "Team standup",
    "description": "Daily standup",
    "location": "Room 1",
    "creator": {"email": "ada@example.com", "self": True},
    "organizer": {"email": "ada@example.com", "displayName": "Ada", "self": True},
    "start": {"dateTime": "2030-03-19T10:00:00+01:00", "timeZone": "Europe/Berlin"},
    "end": {"dateTime": "2030-03-19T10:15:00+01:00", "timeZone": "Europe/Berlin"},
    "recurrence": [
        "RRULE:FREQ=WEEKLY;BYDAY=TU;COUNT=7",
        "EXDATE;TZID=Europe/Berlin:20300409T100000",
    ],
    "iCalUID": "4eahs9ghkhrvkld72hogu9ph3e@google.com",
    "sequence": 0,
    "attendees": [
        {"email": "ada@example.com", "displayName": "Ada", "organizer": True,
         "self": True, "responseStatus": "accepted"},
        {"email": "bob@example.com", "displayName": "Bob", "responseStatus": "needsAction"},
    ],
    "reminders": {"useDefault": True},
    "eventType": "default",
}  # fmt: skip


@BOTH
async def test_cronofy_and_google_shaped_events_are_accepted_unmodified(api_server):
    _, api = api_server
    code, link, _ = await api.post(
        "/v1/links", {"event": CRONOFY, "conferencing": CRONOFY_CONFERENCING}
    )
    assert code == 201, link
    assert link["event"] == CRONOFY  # stored as sent, unknown fields included
    assert link["profile"] == "explicit" and link["join_url"] == CRONOFY_CONFERENCING["join_url"]
    assert link["invitation"]["ical"]["conference"].startswith(
        "CONFERENCE;VALUE=URI;FEATURE=VIDEO;LABEL=Acme Meet:"
    )
    # 15:30 London summer time is 14:30Z; the window opens 15 minutes before
    assert link["valid_from"] == "2030-08-05T14:15:00Z"
    assert link["valid_until"] == "2030-08-05T17:00:00Z"
    code, same, _ = await api.post(
        "/v1/links", {"event": CRONOFY, "conferencing": CRONOFY_CONFERENCING}
    )
    assert code == 200 and same == link
    code, default, _ = await api.post(
        "/v1/links",
        {"event": {**CRONOFY, "event_id": "d"}, "conferencing": {"profile_id": "default"}},
    )
    assert code == 201 and default["profile"] == "default"
    # Cronofy's Create or Update Event writes attendees as {invite, reject}
    upsert = {**CRONOFY, "event_id": "u", "attendees": CRONOFY_UPSERT_ATTENDEES}
    code, link, _ = await api.post("/v1/links", {"event": upsert})
    assert code == 201 and link["event"] == upsert
    bad = {**upsert, "event_id": "b", "attendees": {"invite": "ada@example.com"}}
    code, problem, _ = await api.post("/v1/links", {"event": bad})
    assert code == 422 and problem["errors"][0]["field"].startswith("event.attendees"), problem

    code, series, _ = await api.post("/v1/links", {"event": GOOGLE})
    assert code == 201, series
    assert series["event"] == GOOGLE
    assert series["valid_from"] == "2030-03-19T08:45:00Z"
    # 7 Tuesdays from 19 March (COUNT includes the EXDATE 9 April): the last is 30 April
    assert series["valid_until"] == "2030-04-30T09:15:00Z"
    assert series["series"]["overrides"] == []


@BOTH
async def test_unknown_event_fields_are_limited_and_the_top_level_stays_strict(api_server):
    _, api = api_server
    code, problem, _ = await api.post("/v1/links", {"event": event("u1"), "colour": "red"})
    assert code == 422 and problem["errors"][0]["field"] == "colour"
    big = {**event("u2"), "description": "x" * 17000}
    code, problem, _ = await api.post("/v1/links", {"event": big})
    assert code == 422 and problem["errors"][0]["field"] == "event", problem
    code, problem, _ = await api.post("/v1/links", {"event": {**event("u3"), "bad": "a\u0001"}})
    assert code == 422 and problem["errors"][0]["field"] == "event.bad"
    code, problem, _ = await api.post(
        "/v1/links", {"event": {**event("u4"), "tzid": "Mars/Olympus_Mons"}}
    )
    assert code == 422 and problem["errors"][0]["field"] == "event.tzid"
    code, problem, _ = await api.post(
        "/v1/links", {"event": {"id": "u5", "start": "2030-03-02T10:00:00", "end": at(60)}}
    )
    assert code == 422 and problem["errors"][0]["field"] == "event.start"
    code, problem, _ = await api.post(
        "/v1/links",
        {"event": event("u6"), "conferencing": {"profile": "default", "profile_id": "explicit"}},
    )
    assert code == 422 and problem["errors"][0]["field"] == "conferencing.profile_id"


@BOTH
async def test_all_day_and_local_time_events(api_server):
    _, api = api_server
    day = {"id": "d1", "start": "2030-03-02", "end": "2030-03-03", "tzid": "America/New_York"}
    code, link, _ = await api.post(
        "/v1/links", {"event": day, "options": {"join_before_minutes": 0, "grace_after_minutes": 0}}
    )
    assert code == 201
    assert (link["valid_from"], link["valid_until"]) == (
        "2030-03-02T05:00:00Z",
        "2030-03-03T05:00:00Z",
    )
    google_day = {"id": "d2", "start": {"date": "2030-07-01"}, "end": {"date": "2030-07-02"}}
    code, link, _ = await api.post("/v1/links", {"event": google_day})
    assert code == 201 and link["valid_from"] == "2030-06-30T23:45:00Z"
    # New York changes to summer time on 10 March 2030: 09:00 local is 13:00Z after it
    local = {"id": "d3", "start": "2030-03-11T09:00:00", "end": "2030-03-11T10:00:00",
             "tzid": "America/New_York"}  # fmt: skip
    code, link, _ = await api.post("/v1/links", {"event": local})
    assert code == 201 and link["valid_from"] == "2030-03-11T12:45:00Z"


@BOTH
async def test_series_link_opens_around_each_occurrence(api_server):
    srv, api = api_server
    service = srv.app[LINKS]
    code, link, _ = await api.post("/v1/links", {"event": GOOGLE})
    assert code == 201
    slug = slug_of(link["host_url"])

    async def join_at(when: str) -> str:
        service.clock = lambda: ts(when)
        try:
            await service.resolve_join(slug, token=None, invite=None, name="Host")
        except JoinRefusal as exc:
            return f"{exc.code} {exc.details.get('opens_at')}"
        return "ok"

    try:
        # before DST (CET): 10:00 local is 09:00Z, open from 08:45Z to 10:15Z
        assert await join_at("2030-03-19T08:44:00Z") == "link_not_open 2030-03-19T08:45:00Z"
        assert await join_at("2030-03-19T08:46:00Z") == "ok"
        assert await join_at("2030-03-19T10:16:00Z") == "link_not_open 2030-03-26T08:45:00Z"
        # after DST (CEST, from 31 March): 10:00 local is 08:00Z, open from 07:45Z
        assert await join_at("2030-04-02T07:44:00Z") == "link_not_open 2030-04-02T07:45:00Z"
        assert await join_at("2030-04-02T07:46:00Z") == "ok"
        assert await join_at("2030-04-02T09:14:00Z") == "ok"
        # 9 April is an EXDATE
        assert await join_at("2030-04-09T08:00:00Z") == "link_not_open 2030-04-16T07:45:00Z"

        # Google sends changed occurrences on their own: 16 April moved to 17:00,
        # 23 April cancelled
        moved = {
            "id": GOOGLE["id"] + "_20300416T080000Z",
            "recurringEventId": GOOGLE["id"],
            "originalStartTime": {"dateTime": "2030-04-16T10:00:00+02:00"},
            "start": {"dateTime": "2030-04-16T17:00:00+02:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2030-04-16T17:15:00+02:00", "timeZone": "Europe/Berlin"},
            "status": "confirmed",
            "summary": "Team standup (late)",
        }
        cancelled = {
            "id": GOOGLE["id"] + "_20300423T080000Z",
            "recurringEventId": GOOGLE["id"],
            "originalStartTime": {"dateTime": "2030-04-23T10:00:00+02:00"},
            "status": "cancelled",
        }
        code, after, _ = await api.post("/v1/links", {"event": moved})
        assert code == 200 and after["id"] == link["id"]
        code, after, _ = await api.post("/v1/links", {"event": cancelled})
        assert code == 200 and after["status"] == "active"
        assert [o["status"] for o in after["series"]["overrides"]] == ["moved", "cancelled"]
        before = await outbox_types(srv, api.tenant.id)
        code, _, _ = await api.post("/v1/links", {"event": cancelled})  # no change
        assert code == 200 and await outbox_types(srv, api.tenant.id) == before

        assert await join_at("2030-04-16T08:00:00Z") == "link_not_open 2030-04-16T14:45:00Z"
        assert await join_at("2030-04-16T14:50:00Z") == "ok"
        assert await join_at("2030-04-23T08:00:00Z") == "link_not_open 2030-04-30T07:45:00Z"
        assert await join_at("2030-04-30T08:00:00Z") == "ok"
        assert (await join_at("2030-04-30T09:16:00Z")).startswith("link_ended")
        # the whole series cancelled: the link is revoked
        code, gone, _ = await api.post(
            "/v1/links", {"event": {"id": GOOGLE["id"], "status": "cancelled"}}
        )
        assert code == 200 and gone["status"] == "revoked"
    finally:
        service.clock = __import__("time").time


@BOTH
async def test_series_known_only_by_its_instances(api_server):
    """Google's singleEvents=true view: every occurrence comes alone, with the series id."""
    _, api = api_server
    ids = set()
    for day in (3, 10):
        inst = {
            "id": f"s_{day}",
            "recurring_event_id": "s",
            "start": f"2030-06-{day:02d}T09:00:00Z",
            "end": f"2030-06-{day:02d}T09:30:00Z",
        }
        code, link, _ = await api.post("/v1/links", {"event": inst})
        assert code in (200, 201)
        ids.add(link["id"])
    assert len(ids) == 1
    assert (link["valid_from"], link["valid_until"]) == (
        "2030-06-03T08:45:00Z",
        "2030-06-10T10:30:00Z",
    )


@BOTH
async def test_the_same_patch_or_personal_room_body_again_changes_nothing(api_server):
    srv, api = api_server
    code, link, _ = await api.post("/v1/links", {"event": event("pp1")})
    assert code == 201
    patch = {"event": {"summary": "Renamed"}, "options": {"join_before_minutes": 7}}
    code, first, _ = await api.patch(f"/v1/links/{link['id']}", patch)
    assert code == 200 and first["event"]["summary"] == "Renamed"
    assert (await outbox_types(srv, api.tenant.id))["link.updated"] == 1
    code, second, _ = await api.patch(f"/v1/links/{link['id']}", patch)
    assert code == 200 and second == first  # updated_at unchanged too: nothing written
    assert (await outbox_types(srv, api.tenant.id))["link.updated"] == 1
    room = {"display_name": "Ada's room", "options": {"join_before_minutes": 3}}
    code, created, _ = await api.put("/v1/users/ada/personal-room", room)
    assert code == 201
    for _ in range(2):  # the first repeat changes nothing either: same name and options
        code, same, _ = await api.put("/v1/users/ada/personal-room", room)
        assert code == 200 and same == created
    assert (await outbox_types(srv, api.tenant.id))["link.updated"] == 1


async def test_patch_turns_an_event_into_a_series(api_server):
    _, api = api_server
    single = {"id": "p1", "start": "2030-06-03T09:00:00Z", "end": "2030-06-03T09:30:00Z"}
    code, link, _ = await api.post("/v1/links", {"event": single})
    assert code == 201 and link["series"] is None
    patch = {"event": {"recurrence": ["RRULE:FREQ=DAILY;COUNT=3"]}}
    code, series, _ = await api.patch(f"/v1/links/{link['id']}", patch)
    assert code == 200 and series["series"] is not None
    assert (series["valid_from"], series["valid_until"]) == (
        "2030-06-03T08:45:00Z",
        "2030-06-05T10:30:00Z",
    )
    # PATCH takes the known fields only (a re-sent POST replaces the whole event)
    code, problem, _ = await api.patch(f"/v1/links/{link['id']}", {"event": {"location": "x"}})
    assert code == 422 and problem["errors"][0]["field"] == "event.location", problem
