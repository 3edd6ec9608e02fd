"""Recurring series: which occurrences a series has and which one is open now (pure).

A series is the master event's first start (an aware datetime in the series' time zone),
its duration, its RFC 5545 lines (``RRULE``, ``EXDATE``, ``RDATE``, as Google Calendar's
``recurrence`` list carries them) and its **overrides**: occurrences that were moved or
cancelled on their own, or sent on their own for a series whose master we never saw.
An override is keyed by the occurrence's original start (``occurrence_key``).

Expansion uses python-dateutil's ``rrule`` (RFC 5545 semantics, wall-clock times kept
across daylight-saving changes when the start carries a ``zoneinfo`` zone). Rules are
limited to what calendars produce (FREQ DAILY to YEARLY, no BYHOUR/BYMINUTE/BYSECOND),
so expanding one is bounded by the number of days it spans.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo

from dateutil.rrule import rrule, rruleset, rrulestr

from .eventtime import zone

__all__ = [
    "MAX_OCCURRENCES",
    "Occurrence",
    "Override",
    "Series",
    "bounds",
    "occurrence_key",
    "occurrences",
    "parse_rules",
    "window_at",
]

#: Occurrences expanded to find a series' last one; beyond it the series is open-ended.
MAX_OCCURRENCES = 1000
_ALLOWED_FREQ = {"DAILY", "WEEKLY", "MONTHLY", "YEARLY"}
_FORBIDDEN_PARTS = {"BYHOUR", "BYMINUTE", "BYSECOND"}
_STAMP = re.compile(r"(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})(Z)?)?", re.ASCII)
_LOOKBACK = timedelta(days=366)


def occurrence_key(ts: float) -> str:
    """The key of the occurrence originally starting at ``ts``: RFC 3339 UTC."""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Occurrence:
    key: str  # original start (occurrence_key)
    start: float
    end: float


@dataclass(frozen=True)
class Override:
    start: float
    end: float
    cancelled: bool = False


@dataclass(frozen=True)
class Rules:
    rrules: tuple[rrule, ...]
    rdates: tuple[datetime, ...]
    exdates: frozenset[float]
    exdays: frozenset[date]  # EXDATE;VALUE=DATE: no occurrence on that local day


@dataclass(frozen=True)
class Series:
    start: datetime  # the master's first start, aware, in the series' zone
    duration: timedelta
    rules: Rules | None  # None: the master is one occurrence (or none, see ``base``)
    base: bool = True  # False: only the overrides (a series we know by its instances)
    overrides: Mapping[str, Override] = field(default_factory=dict)


def _stamp(value: str, tz: tzinfo) -> datetime | date:
    m = _STAMP.fullmatch(value)
    if m is None:
        raise ValueError(f"not an iCalendar date or date-time: {value[:40]!r}")
    y, mo, d, h, mi, s, z = m.groups()
    if h is None:
        return date(int(y), int(mo), int(d))
    naive = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s))
    return naive.replace(tzinfo=UTC) if z else naive.replace(tzinfo=tz, fold=0)


def _property(line: str) -> tuple[str, dict[str, str], str]:
    head, sep, value = line.partition(":")
    if not sep:
        raise ValueError(f"not an iCalendar property: {line[:40]!r}")
    name, *params = head.split(";")
    parsed = {}
    for p in params:
        k, eq, v = p.partition("=")
        if not eq:
            raise ValueError(f"bad parameter {p[:40]!r}")
        parsed[k.upper()] = v
    return name.upper(), parsed, value


def _until_utc(rule: str, tz: tzinfo) -> str:
    """dateutil wants UNTIL in UTC with an aware start: a date or floating UNTIL is read
    in the series' zone (a date means the end of that day)."""
    parts = []
    for part in rule.split(";"):
        key, _, value = part.partition("=")
        if key.upper() == "UNTIL" and not value.upper().endswith("Z"):
            when = _stamp(value.upper(), tz)
            if not isinstance(when, datetime):
                when = datetime(when.year, when.month, when.day, 23, 59, 59, tzinfo=tz)
            value = when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        parts.append(f"{key}={value}")
    return ";".join(parts)


def parse_rules(lines: Iterable[str], start: datetime) -> Rules:
    """RRULE / EXDATE / RDATE lines for a series starting at ``start`` (aware);
    ValueError with a message if one is malformed or not supported."""
    tz = start.tzinfo
    assert tz is not None
    rrules: list[rrule] = []
    rdates: list[datetime] = []
    exdates: set[float] = set()
    exdays: set[date] = set()
    for line in lines:
        name, params, value = _property(line.strip())
        if name == "RRULE":
            parts = {p.partition("=")[0].upper(): p.partition("=")[2] for p in value.split(";")}
            if parts.get("FREQ", "").upper() not in _ALLOWED_FREQ:
                raise ValueError("RRULE FREQ must be DAILY, WEEKLY, MONTHLY or YEARLY")
            if _FORBIDDEN_PARTS & set(parts):
                raise ValueError("RRULE BYHOUR, BYMINUTE and BYSECOND are not supported")
            try:
                rule = rrulestr(_until_utc(value, tz), dtstart=start)
            except (ValueError, TypeError, OverflowError) as exc:
                raise ValueError(f"invalid RRULE: {exc}") from None
            assert isinstance(rule, rrule)
            rrules.append(rule)
        elif name in ("EXDATE", "RDATE"):
            local = zone(params["TZID"]) if "TZID" in params else tz
            for item in value.split(","):
                when = _stamp(item.strip().upper(), local)
                if name == "EXDATE":
                    if isinstance(when, datetime):
                        exdates.add(when.timestamp())
                    else:
                        exdays.add(when)
                elif isinstance(when, datetime):
                    rdates.append(when)
                else:
                    rdates.append(start.replace(year=when.year, month=when.month, day=when.day))
        else:
            raise ValueError(f"unsupported recurrence property {name[:20]!r}")
    if len(rrules) > 5 or len(rdates) + len(exdates) + len(exdays) > 1000:
        raise ValueError("too many recurrence rules or dates")
    return Rules(tuple(rrules), tuple(rdates), frozenset(exdates), frozenset(exdays))


def _base(series: Series) -> Iterator[datetime]:
    """The series' own occurrences (before overrides), in order."""
    if not series.base:
        return iter(())
    if series.rules is None:
        return iter((series.start,))
    rules = series.rules
    rset = rruleset()
    for r in rules.rrules:
        rset.rrule(r)
    for d in rules.rdates:
        rset.rdate(d)
    if not rules.rrules and not rules.rdates:
        rset.rdate(series.start)
    tz = series.start.tzinfo
    return (
        dt
        for dt in rset
        if dt.timestamp() not in rules.exdates and dt.astimezone(tz).date() not in rules.exdays
    )


def _effective(series: Series, base: Iterable[datetime]) -> Iterator[Occurrence]:
    """Base occurrences with their overrides applied (cancelled ones dropped)."""
    span = series.duration.total_seconds()
    for dt in base:
        ts = dt.timestamp()
        key = occurrence_key(ts)
        ov = series.overrides.get(key)
        if ov is None:
            yield Occurrence(key, ts, ts + span)
        elif not ov.cancelled:
            yield Occurrence(key, ov.start, ov.end)


def _extra(series: Series, base_keys: set[str]) -> list[Occurrence]:
    """Overrides that are not among the base occurrences (moved far, or added)."""
    return [
        Occurrence(k, ov.start, ov.end)
        for k, ov in series.overrides.items()
        if not ov.cancelled and k not in base_keys
    ]


def occurrences(series: Series, lo: float, hi: float) -> list[Occurrence]:
    """Every occurrence starting in [lo, hi], by start. Base occurrences are searched
    a year around the range too, so that one moved into it is found."""
    margin = _LOOKBACK.total_seconds()
    out: list[Occurrence] = []
    keys: set[str] = set()
    for occ in _effective(series, _between(series, lo - margin, hi + margin)):
        keys.add(occ.key)
        if lo <= occ.start <= hi:
            out.append(occ)
    out.extend(o for o in _extra(series, keys) if lo <= o.start <= hi)
    return sorted(out, key=lambda o: (o.start, o.key))


def _between(series: Series, lo: float, hi: float) -> Iterator[datetime]:
    for dt in _base(series):
        ts = dt.timestamp()
        if ts > hi:
            return
        if ts >= lo:
            yield dt


def window_at(
    series: Series, now: float, before: float, after: float
) -> tuple[str, float, float] | None:
    """The occurrence to check a join at ``now`` against: (key, opens, closes) of the
    one whose window contains ``now``, else the next one to open, else the last one
    that closed. None if the series has no occurrence at all near ``now`` or later."""
    max_span = 31 * 86400.0
    near = occurrences(series, now - max_span - after, now + before)
    for occ in near:
        if occ.start - before <= now <= occ.end + after:
            return occ.key, occ.start - before, occ.end + after
    upcoming = _next(series, now + before)
    if upcoming is not None:
        return upcoming.key, upcoming.start - before, upcoming.end + after
    ended = near or occurrences(series, now - _LOOKBACK.total_seconds(), now)
    if ended:
        last = max(ended, key=lambda o: o.end)
        return last.key, last.start - before, last.end + after
    return None


def _next(series: Series, after_ts: float) -> Occurrence | None:
    best: Occurrence | None = None
    keys: set[str] = set()
    for occ in itertools.islice(_effective(series, _base(series)), 100_000):
        keys.add(occ.key)
        if occ.start > after_ts:
            best = occ
            break
    for key, ov in series.overrides.items():
        if not ov.cancelled and ov.start > after_ts and (best is None or ov.start < best.start):
            best = Occurrence(key, ov.start, ov.end)
    return best


def bounds(series: Series, before: float, after: float) -> tuple[float, float | None] | None:
    """(opens, closes) over the whole series: the first occurrence's opening and the
    last one's closing, or None as closing when the series has more than
    ``MAX_OCCURRENCES`` (open-ended). None if the series has no occurrence."""
    first = list(itertools.islice(_base(series), MAX_OCCURRENCES + 1))
    open_ended = len(first) > MAX_OCCURRENCES
    occs = list(_effective(series, first))
    keys = {o.key for o in occs}
    occs.extend(_extra(series, keys))
    if not occs:
        return None
    opens = min(o.start for o in occs) - before
    closes = None if open_ended else max(o.end for o in occs) + after
    return opens, closes
