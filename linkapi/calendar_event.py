"""Calendar events as integrators send them, read into what a link needs (pure).

``read_event`` accepts our field names and the ones Google Calendar and Cronofy use
(``event_id``, ``recurringEventId``, ``originalStartTime``, ``start.timeZone``, ...).
``link_window`` and ``join_window`` give the validity window of a link: one event, or
a recurring series (``recurrence`` lines and per-occurrence overrides).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .eventtime import EventTime, parse_event_time, zone
from .recurrence import Override, Series, bounds, occurrence_key, parse_rules, window_at

__all__ = [
    "KNOWN_EVENT_FIELDS",
    "MAX_EXTRA_BYTES",
    "MAX_OVERRIDES",
    "CalendarEvent",
    "FieldError",
    "apply_instance",
    "join_window",
    "link_window",
    "read_event",
    "series_of",
]

#: Fields of ``event`` with a meaning here; any other field is stored as sent, up to
#: ``MAX_EXTRA_BYTES`` of compact JSON together.
KNOWN_EVENT_FIELDS = frozenset(
    {
        "id",
        "event_id",
        "calendar_id",
        "recurrence_id",
        "recurring_event_id",
        "recurringEventId",
        "original_start",
        "originalStartTime",
        "status",
        "summary",
        "start",
        "end",
        "tzid",
        "organizer",
        "attendees",
        "recurrence",
    }
)
MAX_EXTRA_BYTES = 16384
MAX_OVERRIDES = 1000
MAX_DURATION = 31 * 86400


class FieldError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class CalendarEvent:
    id: str
    calendar_id: str | None
    recurrence_id: str | None
    series_id: str | None  # recurring_event_id: this event is one occurrence of it
    original_start: float | None  # that occurrence's original start
    start: EventTime | None  # None only for a cancelled event
    end: EventTime | None
    tzid: str | None
    recurrence: tuple[str, ...]
    cancelled: bool

    @property
    def link_event_id(self) -> str:
        """The event id a link is keyed on: the series' for an occurrence."""
        return self.series_id or self.id


def _time(raw: dict[str, Any], name: str, tzid: str | None) -> EventTime | None:
    if raw.get(name) is None:
        return None
    try:
        return parse_event_time(raw[name], tzid)
    except ValueError as exc:
        raise FieldError(f"event.{name}", str(exc)) from None


def _tzid(raw: dict[str, Any]) -> str | None:
    tzid = raw.get("tzid")
    start = raw.get("start")
    if tzid is None and isinstance(start, dict):
        tzid = start.get("timeZone") or start.get("tzid")
    if tzid is not None:
        try:
            zone(tzid)
        except ValueError as exc:
            raise FieldError("event.tzid", str(exc)) from None
    return tzid


def read_event(raw: dict[str, Any]) -> CalendarEvent:
    """The schema-valid ``event`` of a request read into a CalendarEvent; FieldError
    for what the schema cannot express."""
    extra = {k: v for k, v in raw.items() if k not in KNOWN_EVENT_FIELDS}
    if extra and len(json.dumps(extra, separators=(",", ":"))) > MAX_EXTRA_BYTES:
        raise FieldError("event", f"unknown fields may take at most {MAX_EXTRA_BYTES} bytes")
    event_id = raw.get("id", raw.get("event_id"))
    if not event_id:
        raise FieldError("event.id", "required")
    series_id = raw.get("recurring_event_id", raw.get("recurringEventId"))
    if series_id is not None and raw.get("recurrence_id") is not None:
        raise FieldError("event.recurrence_id", "not together with recurring_event_id")
    tzid = _tzid(raw)
    cancelled = raw.get("status") == "cancelled"
    start, end = _time(raw, "start", tzid), _time(raw, "end", tzid)
    if not cancelled:
        if start is None:
            raise FieldError("event.start", "required")
        if end is None:
            raise FieldError("event.end", "required")
        if end.timestamp <= start.timestamp:
            raise FieldError("event.end", "must be after event.start")
        if end.timestamp - start.timestamp > MAX_DURATION:
            raise FieldError("event.end", "an event may last at most 31 days")
    original = _time(raw, "original_start", tzid) or _time(raw, "originalStartTime", tzid)
    recurrence = tuple(raw.get("recurrence") or ())
    if recurrence and series_id is not None:
        raise FieldError("event.recurrence", "an occurrence of a series has no recurrence")
    return CalendarEvent(
        id=str(event_id),
        calendar_id=raw.get("calendar_id"),
        recurrence_id=raw.get("recurrence_id"),
        series_id=series_id,
        original_start=original.timestamp if original else None,
        start=start,
        end=end,
        tzid=tzid,
        recurrence=recurrence,
        cancelled=cancelled,
    )


def _overrides(stored: dict[str, Any]) -> dict[str, Override]:
    return {
        k: Override(float(v["start"]), float(v["end"]), bool(v.get("cancelled")))
        for k, v in stored.items()
    }


def series_of(event: dict[str, Any], overrides: dict[str, Any]) -> Series | None:
    """The series of a link's stored event and overrides, or None for a single event."""
    ev = read_event(event)
    if not ev.recurrence and ev.series_id is None and not overrides:
        return None
    if ev.start is None or ev.end is None:
        raise FieldError("event.start", "required")
    try:
        rules = parse_rules(ev.recurrence, ev.start.at) if ev.recurrence else None
    except ValueError as exc:
        raise FieldError("event.recurrence", str(exc)) from None
    return Series(
        start=ev.start.at,
        duration=timedelta(seconds=ev.end.timestamp - ev.start.timestamp),
        rules=rules,
        base=ev.series_id is None,
        overrides=_overrides(overrides),
    )


def _margins(options: dict[str, Any]) -> tuple[float, float]:
    return 60.0 * int(options["join_before_minutes"]), 60.0 * int(options["grace_after_minutes"])


def link_window(
    event: dict[str, Any], options: dict[str, Any], overrides: dict[str, Any]
) -> tuple[float, float | None]:
    """(valid_from, valid_until) of a link: the event's window, or for a series from
    its first occurrence's opening to its last one's closing (None: open-ended)."""
    before, after = _margins(options)
    series = series_of(event, overrides)
    if series is None:
        ev = read_event(event)
        assert ev.start is not None and ev.end is not None
        return ev.start.timestamp - before, ev.end.timestamp + after
    span = bounds(series, before, after)
    if span is None:
        raise FieldError("event.recurrence", "the series has no occurrence")
    return span


def join_window(
    event: dict[str, Any], options: dict[str, Any], overrides: dict[str, Any], now: float
) -> tuple[float, float] | None:
    """For a series: the window of the occurrence a join at ``now`` is checked against
    (the open one, else the next, else the last). None for a single event."""
    series = series_of(event, overrides)
    if series is None:
        return None
    before, after = _margins(options)
    found = window_at(series, now, before, after)
    return None if found is None else (found[1], found[2])


def apply_instance(overrides: dict[str, Any], ev: CalendarEvent) -> dict[str, Any]:
    """The overrides after an occurrence ``ev`` (moved, cancelled or added) was sent."""
    original = ev.original_start
    if original is None:
        if ev.start is None:
            raise FieldError("event.original_start", "required for a cancelled occurrence")
        original = ev.start.timestamp
    key = occurrence_key(original)
    if ev.cancelled:
        entry = {"start": original, "end": original, "cancelled": True}
    else:
        assert ev.start is not None and ev.end is not None
        entry = {"start": ev.start.timestamp, "end": ev.end.timestamp, "cancelled": False}
    out = {**overrides, key: entry}
    if len(out) > MAX_OVERRIDES:
        raise FieldError("event", f"a series may have at most {MAX_OVERRIDES} changed occurrences")
    return out
