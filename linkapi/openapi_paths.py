"""The link API's own paths in the OpenAPI document (links, tokens, reports, personal
rooms, webhooks); the recording, management and account calls add theirs to the document
in ``openapi``."""

from __future__ import annotations

from typing import Any

from .openapi_parts import (
    _ERRORS,
    _ID,
    _LIMIT,
    _LINK_ID,
    _PATH_ID,
    _SAFE,
    _USER_ID,
    _body,
    _ok,
)

PATHS: dict[str, Any] = {
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
        "parameters": [{"name": "webhook_id", "in": "path", "required": True, "schema": _PATH_ID}],
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
}
