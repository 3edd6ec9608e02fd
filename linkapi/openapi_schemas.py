"""The schemas of the link API's OpenAPI document (``components.schemas``): the request
bodies the routes validate, then the responses."""

from __future__ import annotations

from typing import Any

from .openapi_parts import (
    _DATETIME,
    _EVENT_FIELDS,
    _EVENT_ID_REQUIRED,
    _EVENT_TIME,
    _ID,
    _NAME_PATTERN,
    _NULLABLE_DATETIME,
    _OPTIONS_PROPS,
    _SAFE,
    _URL,
    EVENT_TYPES,
)


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
