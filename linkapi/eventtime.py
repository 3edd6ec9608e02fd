"""Event times as calendars send them (pure: no I/O, no clock).

A start or end is one of

- an RFC 3339 date-time with an offset (``2030-03-02T10:00:00+01:00``, ``…Z``);
- a local date-time without offset (``2030-03-02T10:00:00``), read in the event's IANA
  time zone (``tzid``; refused without one);
- a date (``2030-03-02``): an all-day event, midnight in the event's time zone (UTC
  without one); an all-day ``end`` is exclusive, as in iCalendar and Google Calendar;
- Google Calendar's ``{"dateTime": …, "timeZone": …}`` or ``{"date": …}``, or Cronofy's
  ``{"time": …, "tzid": …}``: the same three forms with the zone beside them.

Local times use ``zoneinfo``: a time in a daylight-saving gap is read with the offset in
force before the gap, an ambiguous time as its first occurrence (RFC 5545 §3.3.5).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .inputs import MAX_YEAR, MIN_YEAR, TIME_MESSAGE, parse_rfc3339

__all__ = [
    "EVENT_TIME_MESSAGE",
    "TZID_PATTERN",
    "EventTime",
    "is_event_time_string",
    "parse_event_time",
    "zone",
]

EVENT_TIME_MESSAGE = (
    "must be an RFC 3339 date-time (with an offset, or local with event.tzid)"
    f" or a date YYYY-MM-DD, years {MIN_YEAR}-{MAX_YEAR}"
)
TZID_PATTERN = "^[A-Za-z][A-Za-z0-9_+\\-]*(/[A-Za-z0-9_+\\-]+)*$"
_TZID = re.compile(TZID_PATTERN, re.ASCII)
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)
_LOCAL = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?", re.ASCII)


@dataclass(frozen=True)
class EventTime:
    """A parsed start or end: ``at`` is aware (in ``zone`` when one applies)."""

    at: datetime
    all_day: bool
    tzid: str | None  # the zone it was read in (given beside it or the event's)

    @property
    def timestamp(self) -> float:
        return self.at.timestamp()


def zone(tzid: str) -> tzinfo:
    """The IANA zone ``tzid`` (ValueError if unknown or malformed)."""
    if len(tzid) > 64 or not _TZID.fullmatch(tzid) or ".." in tzid:
        raise ValueError("not an IANA time zone name")
    try:
        return ZoneInfo(tzid)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {tzid!r}") from None


def _date(value: str) -> date | None:
    m = _DATE.fullmatch(value)
    if m is None:
        return None
    year, month, day = (int(g) for g in m.groups())
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ValueError(EVENT_TIME_MESSAGE)
    try:
        return date(year, month, day)
    except ValueError:
        raise ValueError(EVENT_TIME_MESSAGE) from None


def _local(value: str) -> datetime | None:
    m = _LOCAL.fullmatch(value)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ValueError(EVENT_TIME_MESSAGE)
    micro = int((m.group(7) or "0").ljust(6, "0")[:6])
    try:
        return datetime(year, month, day, hour, minute, second, micro)
    except ValueError:
        raise ValueError(EVENT_TIME_MESSAGE) from None


def is_event_time_string(value: str) -> bool:
    """The syntax of a start/end string (no zone needed to decide)."""
    try:
        parse_rfc3339(value)
        return True
    except ValueError:
        pass
    try:
        return _date(value) is not None or _local(value) is not None
    except ValueError:
        return False


def _in_zone(naive: datetime, tz: tzinfo) -> datetime:
    """Wall time ``naive`` in ``tz`` (fold=0: before a gap, first of an overlap)."""
    return naive.replace(tzinfo=tz, fold=0)


def parse_event_time(value: Any, event_tzid: str | None) -> EventTime:
    """A start/end in any accepted shape; ValueError with a message otherwise."""
    tzid = event_tzid
    if isinstance(value, dict):
        tzid = value.get("timeZone") or value.get("tzid") or event_tzid
        inner = value.get("dateTime") or value.get("time") or value.get("date")
        if not isinstance(inner, str):
            raise ValueError("needs dateTime, time or date")
        value = inner
    if not isinstance(value, str):
        raise ValueError(EVENT_TIME_MESSAGE)
    tz = zone(tzid) if tzid else None
    try:
        aware = parse_rfc3339(value)
    except ValueError:
        pass
    else:
        return EventTime(aware.astimezone(tz) if tz else aware, False, tzid)
    day = _date(value)
    if day is not None:
        start = datetime(day.year, day.month, day.day)
        return EventTime(_in_zone(start, tz or UTC), True, tzid)
    local = _local(value)
    if local is not None:
        if tz is None:
            raise ValueError("a local time (no offset) needs event.tzid")
        return EventTime(_in_zone(local, tz), False, tzid)
    raise ValueError(EVENT_TIME_MESSAGE if value else TIME_MESSAGE)
