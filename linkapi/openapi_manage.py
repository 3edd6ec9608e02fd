"""The management calls' part of the OpenAPI document (issue 17): the link listing's
cursor and ``updated_since``, guest-invite listing and revocation, webhook changes and
pings, and API keys. ``extend`` adds it to the document (openapi.py calls it once,
before any schema is used)."""

from __future__ import annotations

import copy
from typing import Any

from . import openapi_parts as base

__all__ = ["extend"]


def extend(doc: dict[str, Any]) -> None:
    """Add the management paths and schemas to ``doc`` (openapi.OPENAPI)."""
    schemas = doc["components"]["schemas"]
    paths = doc["paths"]
    scoped_errors = {**base._ERRORS, "403": base._PROBLEM}
    ref = {"$ref": "#/components/schemas/GuestInvite"}

    # --- GET /v1/links: cursor pagination and updated_since ------------------------
    listing = paths["/v1/links"]["get"]
    listing["summary"] = "Find links, newest first, a page at a time"
    listing["parameters"] = [
        *listing["parameters"],
        {
            "name": "cursor",
            "in": "query",
            "description": "next_cursor of the previous page (opaque); a malformed cursor is 422",
            "schema": {"type": "string", "minLength": 1, "maxLength": 512, **base._SAFE},
        },
        {
            "name": "updated_since",
            "in": "query",
            "description": "only links created or changed (revoked too) at or after this"
            " instant (RFC 3339): take the time before the first page of one"
            " sync as the next sync's updated_since",
            "schema": base._DATETIME,
        },
    ]
    link_list = schemas["LinkList"]
    link_list["required"] = ["links", "next_cursor"]
    link_list["properties"]["next_cursor"] = {
        "description": "the cursor of the next page; null on the last page",
        "type": ["string", "null"],
    }

    # --- guest invites ---------------------------------------------------------------
    invite = schemas["GuestInvite"]
    invite["properties"]["status"] = {"enum": ["active", "revoked"]}
    invite["properties"]["revoked_at"] = base._NULLABLE_DATETIME
    schemas["GuestInviteList"] = {
        "type": "object",
        "required": ["guest_invites"],
        "properties": {"guest_invites": {"type": "array", "items": ref}},
    }
    paths["/v1/links/{link_id}/guest-invites"]["get"] = {
        "summary": "The link's guest invites, oldest first (revoked ones too)",
        "responses": {"200": base._ok("GuestInviteList"), **base._ERRORS},
    }
    paths["/v1/links/{link_id}/guest-invites/{invite_id}"] = {
        "parameters": [
            *base._LINK_ID,
            {"name": "invite_id", "in": "path", "required": True, "schema": base._PATH_ID},
        ],
        "delete": {
            "summary": "Revoke a guest invite: no one joins through it any more",
            "responses": {"200": base._ok("GuestInvite"), **base._ERRORS},
        },
    }

    # --- webhooks --------------------------------------------------------------------
    create = schemas["WebhookCreate"]
    schemas["WebhookPatch"] = {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "properties": {
            **copy.deepcopy(create["properties"]),
            "active": {
                "type": "boolean",
                "description": "false disables the endpoint (its pending events are"
                " closed out, not sent); true enables it again",
            },
        },
    }
    webhook_path = paths["/v1/webhooks/{webhook_id}"]
    webhook_path["patch"] = {
        "summary": "Change an endpoint (URL, events, secret) or disable/enable it",
        "requestBody": base._body("WebhookPatch"),
        "responses": {"200": base._ok("Webhook"), **base._ERRORS},
    }
    schemas["WebhookPing"] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["delivery_id", "event_id", "webhook_id"],
        "properties": {
            "delivery_id": {
                "type": "string",
                "description": "its entry in /v1/webhooks/deliveries (attempts, status)",
            },
            "event_id": {"type": "string"},
            "webhook_id": {"type": "string"},
        },
    }
    paths["/v1/webhooks/{webhook_id}/ping"] = {
        "parameters": webhook_path["parameters"],
        "post": {
            "summary": "Send a signed webhook.ping event to the endpoint (through the"
            " outbox, like every event)",
            "responses": {"202": base._ok("WebhookPing", "Queued"), **base._ERRORS},
        },
    }
    deliveries = schemas["DeliveryList"]["properties"]["deliveries"]["items"]
    deliveries["properties"]["type"] = {"enum": [*base.EVENT_TYPES, "webhook.ping"]}

    # --- API keys --------------------------------------------------------------------
    scopes = {
        "type": "array",
        "minItems": 1,
        "uniqueItems": True,
        "items": {"enum": ["admin", "links"]},
        "description": "admin: everything, API keys too; links: everything but API keys",
    }
    schemas["ApiKeyCreate"] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 128, **base._SAFE},
            "scopes": {**scopes, "default": ["links"]},
        },
    }
    schemas["ApiKey"] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "name", "scopes", "created_at", "revoked_at", "status"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": ["string", "null"]},
            "scopes": scopes,
            "created_at": base._DATETIME,
            "revoked_at": base._NULLABLE_DATETIME,
            "status": {"enum": ["active", "revoked"]},
            "key": {
                "type": "string",
                "description": "the full key: only in the creation response, never again",
            },
        },
    }
    schemas["ApiKeyList"] = {
        "type": "object",
        "required": ["api_keys"],
        "properties": {
            "api_keys": {"type": "array", "items": {"$ref": "#/components/schemas/ApiKey"}}
        },
    }
    paths["/v1/api-keys"] = {
        "post": {
            "summary": "Create an API key (admin scope); the key is shown once",
            "requestBody": {**base._body("ApiKeyCreate"), "required": False},
            "responses": {"201": base._ok("ApiKey", "Created"), **scoped_errors},
        },
        "get": {
            "summary": "The tenant's API keys (admin scope)",
            "responses": {"200": base._ok("ApiKeyList"), **scoped_errors},
        },
    }
    paths["/v1/api-keys/{key_id}"] = {
        "parameters": [{"name": "key_id", "in": "path", "required": True, "schema": base._PATH_ID}],
        "delete": {
            "summary": "Revoke an API key (admin scope); 409 for the last admin key",
            "responses": {"200": base._ok("ApiKey"), **scoped_errors},
        },
    }
