"""Event times, time zones and recurring series (linkapi/eventtime.py, recurrence.py,
calendar_event.py): pure, no server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from linkapi.calendar_event import (
    FieldError,
    apply_instance,
    join_window,
    link_window,
    read_event,
)
from linkapi.eventtime import parse_event_time

OPTS = {"join_before_minutes": 15, "grace_after_minutes": 60}


def ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def utc(value: float) -> str:
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- single times -----------------------------------------------------------------


def test_offset_times_stay_as_they_are():
    t = parse_event_time("2030-03-02T10:00:00+01:00", None)
    assert utc(t.timestamp) == "2030-03-02T09:00:00Z" and not t.all_day


def test_local_time_needs_a_tzid_and_follows_daylight_saving():
    with pytest.raises(ValueError, match="tzid"):
        parse_event_time("2030-03-02T10:00:00", None)
    winter = parse_event_time("2030-03-02T10:00:00", "Europe/Berlin")
    summer = parse_event_time("2030-04-02T10:00:00", "Europe/Berlin")
    assert utc(winter.timestamp) == "2030-03-02T09:00:00Z"
    assert utc(summer.timestamp) == "2030-04-02T08:00:00Z"


def test_gap_and_overlap_follow_rfc5545():
    # 2030-03-31 02:30 does not exist in Berlin: read with the offset before the gap
    gap = parse_event_time("2030-03-31T02:30:00", "Europe/Berlin")
    assert utc(gap.timestamp) == "2030-03-31T01:30:00Z"
    # 2030-10-27 02:30 happens twice: the first one (summer time)
    overlap = parse_event_time("2030-10-27T02:30:00", "Europe/Berlin")
    assert utc(overlap.timestamp) == "2030-10-27T00:30:00Z"


def test_all_day_is_the_day_in_the_event_zone():
    ev = read_event(
        {"id": "d", "start": "2030-03-02", "end": "2030-03-03", "tzid": "America/New_York"}
    )
    assert ev.start is not None and ev.start.all_day
    frm, until = link_window(
        {"id": "d", "start": "2030-03-02", "end": "2030-03-03", "tzid": "America/New_York"},
        {"join_before_minutes": 0, "grace_after_minutes": 0},
        {},
    )
    assert (utc(frm), utc(until or 0)) == ("2030-03-02T05:00:00Z", "2030-03-03T05:00:00Z")


def test_google_and_cronofy_time_objects():
    g = parse_event_time({"dateTime": "2030-07-01T09:00:00", "timeZone": "Asia/Tokyo"}, None)
    c = parse_event_time({"time": "2030-07-01T09:00:00", "tzid": "Asia/Tokyo"}, None)
    d = parse_event_time({"date": "2030-07-01"}, "Asia/Tokyo")
    assert utc(g.timestamp) == utc(c.timestamp) == "2030-07-01T00:00:00Z"
    assert d.all_day and utc(d.timestamp) == "2030-06-30T15:00:00Z"


@pytest.mark.parametrize(
    "raw, field",
    [
        ({"id": "x", "start": "2030-03-02T10:00:00Z", "end": "2030-03-02T09:00:00Z"}, "event.end"),
        ({"id": "x", "start": "2030-03-02", "end": "2030-03-02"}, "event.end"),
        ({"id": "x", "start": "2030-02-30", "end": "2030-03-03"}, "event.start"),
        ({"id": "x", "start": "1969-12-31", "end": "1970-01-02"}, "event.start"),
        (
            {"id": "x", "start": "2030-03-02", "end": "2030-03-03", "tzid": "Mars/Base"},
            "event.tzid",
        ),
        ({"id": "x", "start": "2030-03-02", "end": "2030-03-03", "tzid": "../etc"}, "event.tzid"),
        ({"id": "x", "start": "2030-03-02T10:00:00", "end": "2030-03-02T11:00:00Z"}, "event.start"),
    ],
)
def test_bad_times_name_the_field(raw, field):
    with pytest.raises(FieldError) as exc:
        read_event(raw)
    assert exc.value.field == field


# --- series -----------------------------------------------------------------------

WEEKLY_BERLIN = {
    "id": "series",
    "start": "2030-03-19T10:00:00",
    "end": "2030-03-19T11:00:00",
    "tzid": "Europe/Berlin",
    "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=5", "EXDATE;TZID=Europe/Berlin:20300409T100000"],
}


def test_weekly_series_across_daylight_saving_opens_at_local_ten():
    # Berlin moves to summer time on 2030-03-31: 10:00 is 09:00Z before, 08:00Z after
    frm, until = link_window(WEEKLY_BERLIN, OPTS, {})
    assert utc(frm) == "2030-03-19T08:45:00Z"
    assert until is not None and utc(until) == "2030-04-16T10:00:00Z"  # 5th, 12:00 local
    w = join_window(WEEKLY_BERLIN, OPTS, {}, ts("2030-03-26T09:30:00Z"))
    assert w is not None and (utc(w[0]), utc(w[1])) == (
        "2030-03-26T08:45:00Z",
        "2030-03-26T11:00:00Z",
    )
    # after DST: the 2 April occurrence opens 07:45Z, not 08:45Z
    w = join_window(WEEKLY_BERLIN, OPTS, {}, ts("2030-04-02T07:50:00Z"))
    assert w is not None and utc(w[0]) == "2030-04-02T07:45:00Z"
    assert utc(w[1]) == "2030-04-02T10:00:00Z"
    # between occurrences: the next one is reported (not open yet)
    w = join_window(WEEKLY_BERLIN, OPTS, {}, ts("2030-03-28T12:00:00Z"))
    assert w is not None and utc(w[0]) == "2030-04-02T07:45:00Z" and w[0] > ts("2030-03-28T12:00Z")


def test_exdate_and_moved_and_cancelled_occurrences():
    # 9 April is an EXDATE: the window after 2 April is 16 April's
    w = join_window(WEEKLY_BERLIN, OPTS, {}, ts("2030-04-09T08:30:00Z"))
    assert w is not None and utc(w[0]) == "2030-04-16T07:45:00Z"
    # move the 26 March occurrence to 27 March 15:00 local, cancel 2 April
    overrides = apply_instance(
        {},
        read_event(
            {
                "id": "series_1",
                "recurring_event_id": "series",
                "original_start": "2030-03-26T10:00:00+01:00",
                "start": "2030-03-27T15:00:00",
                "end": "2030-03-27T16:00:00",
                "tzid": "Europe/Berlin",
            }
        ),
    )
    overrides = apply_instance(
        overrides,
        read_event(
            {
                "id": "series_2",
                "recurringEventId": "series",
                "originalStartTime": {"dateTime": "2030-04-02T10:00:00+02:00"},
                "status": "cancelled",
            }
        ),
    )
    assert join_window(WEEKLY_BERLIN, OPTS, overrides, ts("2030-03-26T09:30:00Z")) is not None
    w = join_window(WEEKLY_BERLIN, OPTS, overrides, ts("2030-03-26T09:30:00Z"))
    assert w is not None and utc(w[0]) == "2030-03-27T13:45:00Z"  # moved: next is 27th
    w = join_window(WEEKLY_BERLIN, OPTS, overrides, ts("2030-03-27T14:30:00Z"))
    assert w is not None and w[0] <= ts("2030-03-27T14:30:00Z") <= w[1]
    w = join_window(WEEKLY_BERLIN, OPTS, overrides, ts("2030-04-02T08:30:00Z"))
    assert w is not None and utc(w[0]) == "2030-04-16T07:45:00Z"  # 2 Apr cancelled, 9 EXDATE
    # after the last occurrence: the last window, closed
    w = join_window(WEEKLY_BERLIN, OPTS, overrides, ts("2030-05-01T00:00:00Z"))
    assert w is not None and w[1] < ts("2030-05-01T00:00:00Z")


def test_open_ended_series_and_series_known_by_instances():
    daily = {
        "id": "d",
        "start": "2030-01-01T09:00:00Z",
        "end": "2030-01-01T09:15:00Z",
        "recurrence": ["RRULE:FREQ=DAILY"],
    }
    frm, until = link_window(daily, OPTS, {})
    assert utc(frm) == "2030-01-01T08:45:00Z" and until is None
    w = join_window(daily, OPTS, {}, ts("2031-06-15T09:00:00Z"))
    assert w is not None and utc(w[0]) == "2031-06-15T08:45:00Z"
    instance = {
        "id": "i1",
        "recurring_event_id": "s",
        "start": "2030-01-05T09:00:00Z",
        "end": "2030-01-05T10:00:00Z",
    }
    overrides = apply_instance({}, read_event(instance))
    assert link_window(instance, OPTS, overrides) == (
        ts("2030-01-05T08:45:00Z"),
        ts("2030-01-05T11:00:00Z"),
    )


@pytest.mark.parametrize(
    "rule",
    [
        "RRULE:FREQ=HOURLY",
        "RRULE:FREQ=DAILY;BYHOUR=1,2",
        "RRULE:FREQ=WEEKLY;BYDAY=XX",
        "EXRULE:FREQ=DAILY",
        "RRULE FREQ=DAILY",
        "EXDATE:2030",
    ],
)
def test_unsupported_or_malformed_rules_are_refused(rule):
    with pytest.raises(FieldError) as exc:
        link_window({**WEEKLY_BERLIN, "recurrence": [rule]}, OPTS, {})
    assert exc.value.field == "event.recurrence"


def test_all_day_series_with_date_until_and_date_exdate():
    ev = {
        "id": "a",
        "start": "2030-03-29",
        "end": "2030-03-30",
        "tzid": "Europe/London",
        "recurrence": ["RRULE:FREQ=DAILY;UNTIL=20300402", "EXDATE;VALUE=DATE:20300331"],
    }
    zero = {"join_before_minutes": 0, "grace_after_minutes": 0}
    frm, until = link_window(ev, zero, {})
    assert utc(frm) == "2030-03-29T00:00:00Z"
    assert until is not None and utc(until) == "2030-04-02T23:00:00Z"  # BST midnight
    w = join_window(ev, zero, {}, ts("2030-03-31T12:00:00Z"))
    assert w is not None and utc(w[0]) == "2030-03-31T23:00:00Z"  # 31 March excluded
