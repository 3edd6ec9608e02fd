"""The OpenAPI 3.1 document of the link API, and request validation from its schemas.

The document is the single source of truth: request bodies are validated against the
same schemas (JSON Schema 2020-12), and the tests validate every response against it.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from .accounts.openapi_paths import add_account_paths
from .eventtime import EVENT_TIME_MESSAGE, TZID_PATTERN, is_event_time_string
from .inputs import SAFE_TEXT_PATTERN, TEXT_MESSAGE, TIME_MESSAGE, parse_rfc3339
from .openapi_manage import extend as extend_manage
from .recordings_openapi import add_recording_api

__all__ = ["EVENT_TYPES", "OPENAPI", "schema_errors", "validator_for"]

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


def _token(roles: list[str], *strings: str) -> dict[str, Any]:
    """A minted join token or room token: the token, its expiry and role, and more."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["token", *strings, "expires_at", "role"],
        "properties": {
            "token": {"type": "string"},
            **{name: {"type": "string"} for name in strings},
            "expires_at": _DATETIME,
            "role": {"enum": roles},
        },
    }


def _token_create(roles: list[str]) -> dict[str, Any]:
    """The request body that mints a join token or a room token."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["user_id", "name", "role"],
        "properties": {
            "user_id": _ID,
            "name": {
                "type": "string",
                "minLength": 1,
                "maxLength": 64,
                "pattern": _NAME_PATTERN,
            },
            "role": {"enum": roles},
            "ttl_seconds": {"type": "integer", "minimum": 10, "maximum": 86400},
        },
    }


# people as calendars send them: Google's displayName/responseStatus, Cronofy's
# display_name, ... are kept as sent
_PERSON = {
    "type": "object",
    "properties": {
        "email": {"type": "string", "maxLength": 320, **_SAFE},
        "name": {"type": "string", "maxLength": 256, **_SAFE},
    },
}
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
    "attendees": {"type": "array", "maxItems": 1000, "items": _PERSON},
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

SCHEMAS: dict[str, Any] = {
    "EventInput": {
        "description": "A calendar event as the calendar sends it. Fields not listed here"
        " are stored as sent (at most 16384 bytes of JSON together).",
        "type": "object",
        "properties": {
            "id": _ID,
            "event_id": {**_ID, "description": "Cronofy's name for id"},
            "calendar_id": _ID,
            "recurrence_id": _ID,
            "recurring_event_id": _ID,
            "recurringEventId": {**_ID, "description": "Google's name for recurring_event_id"},
            "original_start": _EVENT_TIME,
            "originalStartTime": _EVENT_TIME,
            "status": {"enum": ["confirmed", "tentative", "cancelled"]},
            **_EVENT_FIELDS,
        },
        "anyOf": _EVENT_ID_REQUIRED,
        "if": {"properties": {"status": {"const": "cancelled"}}, "required": ["status"]},
        "else": {"required": ["start", "end"]},
    },
    "EventPatch": {  # what may change when an event moves (its identity may not)
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "properties": _EVENT_FIELDS,
    },
    "LinkOptions": {
        "type": "object",
        "additionalProperties": False,
        "properties": _OPTIONS_PROPS,
    },
    "Conferencing": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "profile": {"enum": ["default", "explicit"]},
            "profile_id": {
                "enum": ["default", "explicit"],
                "description": "Cronofy's name for profile",
            },
            "join_url": _URL,
            "provider_description": {"type": "string", "maxLength": 256, **_SAFE},
        },
    },
    "LinkCreate": {
        "type": "object",
        "additionalProperties": False,
        "required": ["event"],
        "properties": {
            "event": {"$ref": "#/components/schemas/EventInput"},
            "options": {"$ref": "#/components/schemas/LinkOptions"},
            "conferencing": {"$ref": "#/components/schemas/Conferencing"},
        },
    },
    "LinkPatch": {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "properties": {
            "event": {"$ref": "#/components/schemas/EventPatch"},
            "options": {"$ref": "#/components/schemas/LinkOptions"},
        },
    },
    "PersonalRoomRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "display_name": {"type": "string", "maxLength": 256, **_SAFE},
            "options": {"$ref": "#/components/schemas/LinkOptions"},
        },
    },
    "GuestInviteCreate": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"max_guests": {"type": "integer", "minimum": 1, "maximum": 100}},
    },
    "JoinTokenCreate": _token_create(["host", "member"]),
    "RoomTokenCreate": _token_create(["host", "member", "guest"]),
    "WebhookCreate": {
        "type": "object",
        "additionalProperties": False,
        "required": ["url"],
        "properties": {
            "url": _URL,
            "secret": {"type": "string", "minLength": 16, "maxLength": 256, **_SAFE},
            "events": {
                "type": "array",
                "items": {"enum": EVENT_TYPES},
                "uniqueItems": True,
                "maxItems": len(EVENT_TYPES),
            },
        },
    },
    "Invitation": {
        "type": "object",
        "required": ["text", "html", "ical"],
        "properties": {
            "text": {"type": "string"},
            "html": {"type": "string"},
            "ical": {
                "type": "object",
                "required": ["conference", "url", "description"],
                "properties": {
                    "conference": {"type": "string"},
                    "url": {"type": "string"},
                    "description": {"type": "string"},
                },
            },
        },
    },
    "Link": {
        "type": "object",
        "additionalProperties": False,
        "required": [
            "id",
            "kind",
            "status",
            "profile",
            "join_url",
            "host_url",
            "valid_from",
            "valid_until",
            "event",
            "options",
            "created_at",
            "updated_at",
            "revoked_at",
            "invitation",
        ],
        "properties": {
            "id": {"type": "string"},
            "kind": {"enum": ["event", "personal"]},
            "status": {"enum": ["active", "revoked"]},
            "profile": {"enum": ["default", "explicit"]},
            "provider_description": {"type": ["string", "null"]},
            "join_url": {"type": "string"},
            "host_url": {"type": ["string", "null"]},
            "user_id": {"type": ["string", "null"]},
            "valid_from": _NULLABLE_DATETIME,
            "valid_until": _NULLABLE_DATETIME,
            "event": {"type": "object"},
            "options": {
                "type": "object",
                "additionalProperties": False,
                "required": list(_OPTIONS_PROPS),
                "properties": _OPTIONS_PROPS,
            },
            "created_at": _DATETIME,
            "updated_at": _DATETIME,
            "revoked_at": _NULLABLE_DATETIME,
            "series": {
                "description": "null unless the link is a recurring series's",
                "type": ["object", "null"],
                "additionalProperties": False,
                "required": ["current_window", "overrides"],
                "properties": {
                    "current_window": {
                        "description": "the occurrence a join now is checked against: the"
                        " open one, else the next, else the last; null if none",
                        "type": ["object", "null"],
                        "required": ["valid_from", "valid_until"],
                        "properties": {"valid_from": _DATETIME, "valid_until": _DATETIME},
                    },
                    "overrides": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["original_start", "status", "start", "end"],
                            "properties": {
                                "original_start": _DATETIME,
                                "status": {"enum": ["moved", "cancelled"]},
                                "start": _NULLABLE_DATETIME,
                                "end": _NULLABLE_DATETIME,
                            },
                        },
                    },
                },
            },
            "invitation": {"$ref": "#/components/schemas/Invitation"},
        },
    },
    "LinkList": {
        "type": "object",
        "required": ["links"],
        "properties": {"links": {"type": "array", "items": {"$ref": "#/components/schemas/Link"}}},
    },
    "GuestInvite": {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "link_id", "url", "max_guests", "created_at"],
        "properties": {
            "id": {"type": "string"},
            "link_id": {"type": "string"},
            "url": {"type": "string"},
            "max_guests": {"type": "integer"},
            "created_at": _DATETIME,
        },
    },
    "JoinToken": _token(["host", "member"], "join_url"),
    "RoomToken": _token(["host", "member", "guest"], "room", "room_id"),
    "Webhook": {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "url", "events", "created_at", "active"],
        "properties": {
            "id": {"type": "string"},
            "url": {"type": "string"},
            "events": {"type": "array", "items": {"enum": EVENT_TYPES}},
            "created_at": _DATETIME,
            "active": {"type": "boolean"},
            "secret": {"type": "string", "description": "only in the creation response"},
        },
    },
    "WebhookList": {
        "type": "object",
        "required": ["webhooks"],
        "properties": {
            "webhooks": {"type": "array", "items": {"$ref": "#/components/schemas/Webhook"}}
        },
    },
    "DeliveryList": {
        "type": "object",
        "required": ["deliveries"],
        "properties": {
            "deliveries": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": [
                        "id",
                        "event_id",
                        "type",
                        "endpoint_id",
                        "created_at",
                        "delivered_at",
                        "attempts",
                    ],
                    "properties": {
                        "id": {"type": "string"},
                        "event_id": {"type": "string"},
                        "type": {"enum": EVENT_TYPES},
                        "endpoint_id": {"type": "string"},
                        "created_at": _DATETIME,
                        "delivered_at": _NULLABLE_DATETIME,
                        "next_attempt_at": _NULLABLE_DATETIME,
                        "last_error": {"type": ["string", "null"]},
                        "parked": {
                            "type": "boolean",
                            "description": "set aside for good, never sent (see last_error)",
                        },
                        "attempts": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["attempt", "at", "status", "error"],
                                "properties": {
                                    "attempt": {"type": "integer"},
                                    "at": _DATETIME,
                                    "status": {"type": ["integer", "null"]},
                                    "error": {"type": ["string", "null"]},
                                    "duration_ms": {"type": "number"},
                                },
                            },
                        },
                    },
                },
            }
        },
    },
    "MeetingReport": {
        "type": "object",
        "additionalProperties": False,
        "required": ["room_id", "link_id", "started_at", "finished_at", "reason", "participants"],
        "properties": {
            "room_id": {"type": "string"},
            "link_id": {"type": "string"},
            "started_at": _DATETIME,
            "finished_at": _DATETIME,
            "reason": {"type": "string"},
            "participants": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": [
                        "participant_id",
                        "name",
                        "role",
                        "user_id",
                        "joined_at",
                        "left_at",
                        "speaking_seconds",
                    ],
                    "properties": {
                        "participant_id": {"type": "string"},
                        "name": {"type": "string"},
                        "role": {"enum": ["host", "member", "guest"]},
                        "user_id": {"type": ["string", "null"]},
                        "joined_at": _DATETIME,
                        "left_at": _DATETIME,
                        "speaking_seconds": {"type": "number", "minimum": 0},
                    },
                },
            },
        },
    },
    "ReportList": {
        "type": "object",
        "required": ["reports"],
        "properties": {
            "reports": {"type": "array", "items": {"$ref": "#/components/schemas/MeetingReport"}}
        },
    },
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    },
}


def _body(schema: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


_RATE_HEADERS = {
    name: {
        "description": description
        + " (on every authenticated response; not on 401 or the OpenAPI document)",
        "required": False,
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
_ERRORS = {str(s): _PROBLEM for s in (400, 401, 404, 409, 413, 415, 422, 429)}
_PATH_ID = {"type": "string", "minLength": 1, **_SAFE}
_LINK_ID = [{"name": "link_id", "in": "path", "required": True, "schema": _PATH_ID}]
_LIMIT = {
    "name": "limit",
    "in": "query",
    "description": "1-500; anything else is 422",
    "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
}
_USER_ID = [{"name": "user_id", "in": "path", "required": True, "schema": _ID}]

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "mediaserver link API",
        "version": "1.0.0",
        "description": "Meeting links for calendar events. See docs/linkapi.md.",
    },
    "security": [{"bearer": []}],
    "paths": {
        "/v1/links": {
            "post": {
                "summary": "Mint (or return) the meeting link of a calendar event",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 255, **_SAFE},
                    }
                ],
                "requestBody": _body("LinkCreate"),
                "responses": {
                    "201": _ok("Link", "Created"),
                    "200": _ok("Link", "The link this event already has"),
                    **_ERRORS,
                },
            },
            "get": {
                "summary": "Find links",
                "parameters": [
                    {"name": "event_id", "in": "query", "schema": _ID},
                    {"name": "calendar_id", "in": "query", "schema": _ID},
                    _LIMIT,
                ],
                "responses": {"200": _ok("LinkList"), **_ERRORS},
            },
        },
        "/v1/links/{link_id}": {
            "parameters": _LINK_ID,
            "get": {"summary": "Get a link", "responses": {"200": _ok("Link"), **_ERRORS}},
            "patch": {
                "summary": "The event moved or was renamed",
                "requestBody": _body("LinkPatch"),
                "responses": {"200": _ok("Link"), **_ERRORS},
            },
            "delete": {
                "summary": "The event was cancelled: revoke the link, end a running meeting",
                "responses": {"200": _ok("Link"), **_ERRORS},
            },
        },
        "/v1/links/{link_id}/guest-invites": {
            "parameters": _LINK_ID,
            "post": {
                "summary": "Create a reusable guest-invite URL",
                "requestBody": {**_body("GuestInviteCreate"), "required": False},
                "responses": {"201": _ok("GuestInvite", "Created"), **_ERRORS},
            },
        },
        "/v1/links/{link_id}/join-tokens": {
            "parameters": _LINK_ID,
            "post": {
                "summary": "A short-lived signed token for a signed-in user",
                "requestBody": _body("JoinTokenCreate"),
                "responses": {"201": _ok("JoinToken", "Created"), **_ERRORS},
            },
        },
        "/v1/rooms/{room}/tokens": {
            "parameters": [
                {
                    "name": "room",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$"},
                }
            ],
            "post": {
                "summary": "A signed token to join the tenant's ad-hoc room (rooms.adhoc)",
                "requestBody": _body("RoomTokenCreate"),
                "responses": {"201": _ok("RoomToken", "Created"), **_ERRORS},
            },
        },
        "/v1/links/{link_id}/report": {
            "parameters": _LINK_ID,
            "get": {
                "summary": "Attendance and speaking time of the link's finished meetings",
                "parameters": [_LIMIT],
                "responses": {"200": _ok("ReportList"), **_ERRORS},
            },
        },
        "/v1/users/{user_id}/personal-room": {
            "parameters": _USER_ID,
            "put": {
                "summary": "The user's personal room link (created on first call)",
                "requestBody": {**_body("PersonalRoomRequest"), "required": False},
                "responses": {
                    "201": _ok("Link", "Created"),
                    "200": _ok("Link", "Existing"),
                    **_ERRORS,
                },
            },
        },
        "/v1/users/{user_id}/personal-room/rotate": {
            "parameters": _USER_ID,
            "post": {
                "summary": "Replace the personal room's slugs (old URLs stop working)",
                "responses": {"200": _ok("Link"), **_ERRORS},
            },
        },
        "/v1/webhooks": {
            "post": {
                "summary": "Register a webhook endpoint",
                "requestBody": _body("WebhookCreate"),
                "responses": {"201": _ok("Webhook", "Created"), **_ERRORS},
            },
            "get": {
                "summary": "List endpoints",
                "responses": {"200": _ok("WebhookList"), **_ERRORS},
            },
        },
        "/v1/webhooks/{webhook_id}": {
            "parameters": [
                {"name": "webhook_id", "in": "path", "required": True, "schema": _PATH_ID}
            ],
            "delete": {
                "summary": "Disable an endpoint",
                "responses": {"200": _ok("Webhook"), **_ERRORS},
            },
        },
        "/v1/webhooks/deliveries": {
            "get": {
                "summary": "Webhook events and their delivery attempts, newest first",
                "parameters": [
                    _LIMIT,
                    {"name": "undelivered", "in": "query", "schema": {"type": "boolean"}},
                ],
                "responses": {"200": _ok("DeliveryList"), **_ERRORS},
            }
        },
    },
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "Tenant API key"}
        },
    },
}
add_recording_api(OPENAPI, ok=_ok, body=_body, errors=_ERRORS, link_id=_LINK_ID, limit=_LIMIT)

extend_manage(OPENAPI)  # listing, invites, webhook changes, API keys (issue 17)
add_account_paths(OPENAPI, _ok, _ERRORS, _SAFE)  # /v1/users, /v1/me (linkapi/accounts)

_REGISTRY: Registry[Any] = Registry().with_resource(
    "urn:mediaserver:openapi", Resource.from_contents(OPENAPI, default_specification=DRAFT202012)
)
_VALIDATORS: dict[str, Draft202012Validator] = {}
#: Request validation checks ``date-time`` itself (jsonschema's own check is a no-op
#: without an optional package, and Python's parser accepts more than RFC 3339).
FORMAT_CHECKER = FormatChecker(formats=())


@FORMAT_CHECKER.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    if isinstance(value, str):
        parse_rfc3339(value)
    return True


@FORMAT_CHECKER.checks("event-time", raises=ValueError)
def _is_event_time(value: object) -> bool:
    if isinstance(value, str) and not is_event_time_string(value):
        raise ValueError(EVENT_TIME_MESSAGE)
    return True


_PATTERN_MESSAGES = {
    TZID_PATTERN: "must be an IANA time zone name such as Europe/Berlin",
    SAFE_TEXT_PATTERN: TEXT_MESSAGE,
    _NAME_PATTERN: "control characters are not allowed",
    _URL["pattern"]: "must be an http(s) URL without spaces or control characters",
}


def validator_for(schema_name: str) -> Draft202012Validator:
    v = _VALIDATORS.get(schema_name)
    if v is None:
        v = Draft202012Validator(
            {"$ref": f"urn:mediaserver:openapi#/components/schemas/{schema_name}"},
            registry=_REGISTRY,
            format_checker=FORMAT_CHECKER,
        )
        _VALIDATORS[schema_name] = v
    return v


def schema_errors(schema_name: str, instance: Any) -> list[dict[str, str]]:
    """Field-level errors (``field`` is a dotted path) of ``instance``; [] if valid."""
    out: list[dict[str, str]] = []
    for err in sorted(validator_for(schema_name).iter_errors(instance), key=lambda e: e.path):
        path = ".".join(str(p) for p in err.absolute_path)
        if err.validator == "additionalProperties":
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            for name in extra:
                out.append(
                    {"field": f"{path}.{name}" if path else name, "message": "unknown field"}
                )
            continue
        if err.validator == "required":
            missing = err.message.split("'")[1] if "'" in err.message else err.message
            out.append({"field": f"{path}.{missing}" if path else missing, "message": "required"})
            continue
        if err.validator == "pattern":
            out.append({"field": path, "message": _PATTERN_MESSAGES[str(err.validator_value)]})
            continue
        if err.validator == "format":
            message = TIME_MESSAGE if err.validator_value == "date-time" else EVENT_TIME_MESSAGE
            out.append({"field": path, "message": message})
            continue
        if err.validator == "anyOf" and err.validator_value == _EVENT_TIME["anyOf"]:
            out.append({"field": path, "message": EVENT_TIME_MESSAGE})
            continue
        if err.validator == "anyOf" and err.validator_value == _EVENT_ID_REQUIRED:
            out.append({"field": f"{path}.id", "message": "required (or event_id)"})
            continue
        out.append({"field": path or "(body)", "message": err.message[:300]})
    return out
