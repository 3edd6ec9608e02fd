"""Rules that every input of the link API follows, applied in one place.

- Text: no string anywhere in a request (body values and keys, path and query
  parameters, the ``Idempotency-Key`` header) may contain a lone surrogate
  (U+D800-U+DFFF) or a control character (U+0000-U+001F, U+007F-U+009F).
- Times: RFC 3339 ``date-time`` with an offset, years ``MIN_YEAR``-``MAX_YEAR``, so that
  every derived time (validity windows, offsets) stays inside Python's datetime range.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

__all__ = [
    "MAX_YEAR",
    "MIN_YEAR",
    "SAFE_TEXT_PATTERN",
    "TEXT_MESSAGE",
    "TIME_MESSAGE",
    "bad_text",
    "parse_rfc3339",
    "text_errors",
]

MIN_YEAR = 1970
MAX_YEAR = 9998
_FORBIDDEN = "\\x00-\\x1f\\x7f-\\x9f\\ud800-\\udfff"
#: The JSON Schema ``pattern`` stating the text rule (the check itself is ``bad_text``:
#: a ``$`` in a pattern also matches before a final line feed).
SAFE_TEXT_PATTERN = f"^[^{_FORBIDDEN}]*$"
_UNSAFE = re.compile(f"[{_FORBIDDEN}]")
TEXT_MESSAGE = (
    "control characters (U+0000-U+001F, U+007F-U+009F) and lone surrogates are not allowed"
)
TIME_MESSAGE = (
    f"must be an RFC 3339 date-time with a UTC offset or Z (e.g. 2030-03-02T10:00:00Z),"
    f" years {MIN_YEAR}-{MAX_YEAR}"
)
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


def bad_text(value: str) -> bool:
    return _UNSAFE.search(value) is not None


def _escape(key: str) -> str:
    return key.encode("ascii", "backslashreplace").decode() if bad_text(key) else key


def text_errors(value: Any, path: str = "") -> list[dict[str, str]]:
    """A 422 error for every string (value or object key) in ``value`` breaking the
    text rule; ``field`` is its dotted path, as for schema errors."""
    out: list[dict[str, str]] = []
    if isinstance(value, str):
        if bad_text(value):
            out.append({"field": path or "(body)", "message": TEXT_MESSAGE})
    elif isinstance(value, dict):
        for key, item in value.items():
            field = f"{path}.{_escape(key)}" if path else _escape(key)
            if bad_text(key):
                out.append({"field": field, "message": f"field name: {TEXT_MESSAGE}"})
            out.extend(text_errors(item, field))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out.extend(text_errors(item, f"{path}.{i}" if path else str(i)))
    return out


def parse_rfc3339(value: str) -> datetime:
    """An aware datetime, or ValueError (message: ``TIME_MESSAGE``) unless ``value`` is
    an RFC 3339 date-time with an offset, years MIN_YEAR-MAX_YEAR. Fractions beyond
    microseconds are cut; leap seconds (``:60``) are refused."""
    m = _RFC3339.fullmatch(value)
    if m is None:
        raise ValueError(TIME_MESSAGE)
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    fraction, zulu, sign, off_h, off_m = m.groups()[6:]
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ValueError(TIME_MESSAGE)
    if zulu:
        tz = UTC
    else:
        if int(off_h) > 23 or int(off_m) > 59:
            raise ValueError(TIME_MESSAGE)
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        tz = timezone(-offset if sign == "-" else offset)
    micro = int((fraction or "0").ljust(6, "0")[:6])
    try:
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError:  # month 13, 30 February, second 60, ...
        raise ValueError(TIME_MESSAGE) from None
