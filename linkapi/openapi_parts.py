"""The pieces the link API's OpenAPI document is built from: the webhook event types,
the field schemas that several schemas share, and the helpers of the paths (request
bodies, responses with the rate-limit headers, problems, the common parameters).

They are shared by ``openapi_schemas``, ``openapi_paths``, ``openapi_manage`` and the
request validation in ``openapi``; this module imports none of them.
"""

from __future__ import annotations

from typing import Any

from .eventtime import TZID_PATTERN
from .inputs import SAFE_TEXT_PATTERN

EVENT_TYPES = [
    "link.created",
    "link.updated",
    "link.revoked",
    "room.started",
    "participant.joined",
    "participant.left",
    "room.finished",
    "connection.revoked",
    "recording.started",
    "recording.ready",
]

_SAFE = {"pattern": SAFE_TEXT_PATTERN}  # no control characters, no lone surrogates
_ID = {"type": "string", "minLength": 1, "maxLength": 256, **_SAFE}
_TEXT = {"type": "string", "maxLength": 1024, **_SAFE}
_DATETIME = {"type": "string", "format": "date-time", "maxLength": 64}
_NULLABLE_DATETIME = {"type": ["string", "null"], "format": "date-time"}

# people as calendars send them: Google's displayName/responseStatus, Cronofy's
# display_name, ... are kept as sent
_PERSON = {
    "type": "object",
    "properties": {
        "email": {"type": "string", "maxLength": 320, **_SAFE},
        "name": {"type": "string", "maxLength": 256, **_SAFE},
    },
}
_PEOPLE = {"type": "array", "maxItems": 1000, "items": _PERSON}
_TIME_STRING = {"type": "string", "maxLength": 64, "format": "event-time"}
_TZID = {"type": "string", "maxLength": 64, "pattern": TZID_PATTERN}
_EVENT_TIME = {
    "description": "RFC 3339 date-time with an offset; a local date-time (with event.tzid);"
    " a date YYYY-MM-DD (all-day); or Google's {dateTime|date, timeZone} or Cronofy's"
    " {time, tzid}",
    "anyOf": [
        _TIME_STRING,
        {
            "type": "object",
            "minProperties": 1,
            "properties": {
                "dateTime": _TIME_STRING,
                "date": _TIME_STRING,
                "time": _TIME_STRING,
                "timeZone": _TZID,
                "tzid": _TZID,
            },
        },
    ],
}
_EVENT_ID_REQUIRED = [{"required": ["id"]}, {"required": ["event_id"]}]
_EVENT_FIELDS = {
    "summary": _TEXT,
    "start": _EVENT_TIME,
    "end": _EVENT_TIME,
    "tzid": _TZID,
    "organizer": _PERSON,
    "attendees": {
        "description": "A list of people (Google; Cronofy's events as read), or Cronofy's"
        " {invite: [...], reject: [...]} of its Create or Update Event; kept as sent",
        "anyOf": [
            _PEOPLE,
            {"type": "object", "properties": {"invite": _PEOPLE, "reject": _PEOPLE}},
        ],
    },
    "recurrence": {
        "description": "RFC 5545 RRULE, EXDATE and RDATE lines (as Google Calendar sends them)",
        "type": "array",
        "maxItems": 50,
        "items": {"type": "string", "minLength": 1, "maxLength": 1024, **_SAFE},
    },
}
# a display name: also no bidi override/isolate characters (as the signalling join.name)
_NAME_PATTERN = "^[^\\x00-\\x1f\\x7f-\\x9f\\ud800-\\udfff\\u202a-\\u202e\\u2066-\\u2069]+$"
_URL = {
    "type": "string",
    "maxLength": 2048,
    "pattern": "^https?://[^\\x00-\\x20\\x7f-\\x9f\\ud800-\\udfff]+$",
}
_OPTIONS_PROPS = {
    "waiting_room": {"type": "boolean"},
    "guest_policy": {"enum": ["allow", "lobby", "deny"]},
    "max_participants": {"type": "integer", "minimum": 1, "maximum": 1000},
    "max_guests": {"type": "integer", "minimum": 0, "maximum": 1000},
    "join_before_minutes": {"type": "integer", "minimum": 0, "maximum": 1440},
    "grace_after_minutes": {"type": "integer", "minimum": 0, "maximum": 1440},
    "recording": {"enum": ["off", "host", "always"]},
}


def _body(schema: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


#: Required on every response of an authenticated request (errors included), so that
#: schemathesis checks they are there; a 401 has none (no tenant, no bucket).
_RATE_HEADERS = {
    name: {
        "description": description
        + " (on every authenticated response; not on 401 or the OpenAPI document)",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
    for name, description in (
        ("RateLimit-Limit", "Requests the tenant may make at once (the burst)"),
        ("RateLimit-Remaining", "Requests left right now"),
        ("RateLimit-Reset", "Seconds until the full burst is available again"),
    )
}


def _ok(schema: str, description: str = "OK") -> dict[str, Any]:
    return {
        "description": description,
        "headers": _RATE_HEADERS,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


_PROBLEM = {
    "description": "Problem",
    "headers": _RATE_HEADERS,
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}
_UNAUTHORIZED = {  # refused before the rate limit: no RateLimit-* headers
    "description": "Problem (no API key, or an unknown or revoked one)",
    "content": _PROBLEM["content"],
}
_ERRORS = {
    str(s): _UNAUTHORIZED if s == 401 else _PROBLEM
    for s in (400, 401, 404, 409, 413, 415, 422, 429)
}
_PATH_ID = {"type": "string", "minLength": 1, **_SAFE}
_LINK_ID = [{"name": "link_id", "in": "path", "required": True, "schema": _PATH_ID}]
_LIMIT = {
    "name": "limit",
    "in": "query",
    "description": "1-500; anything else is 422",
    "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
}
_USER_ID = [{"name": "user_id", "in": "path", "required": True, "schema": _ID}]
