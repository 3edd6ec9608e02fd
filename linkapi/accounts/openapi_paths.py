"""The OpenAPI part of member accounts: /v1/users and /v1/me, merged into the link API's
document by ``linkapi.openapi`` (``add_account_paths``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["add_account_paths"]


def add_account_paths(
    doc: dict[str, Any],
    ok: Callable[[str, str], dict[str, Any]],
    errors: dict[str, Any],
    safe: dict[str, str],
) -> None:
    text = {"type": "string", "minLength": 1, "maxLength": 200, **safe}
    schemas = doc["components"]["schemas"]
    schemas["UserCreate"] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["email", "name"],
        "properties": {
            "email": {"type": "string", "minLength": 3, "maxLength": 254, **safe},
            "name": text,
        },
    }
    member = {
        "type": "object",
        "required": ["id", "email", "name", "tenant_id", "created_at", "password_set"],
        "properties": {
            "id": {"type": "string"},
            "email": {"type": "string"},
            "name": {"type": "string"},
            "tenant_id": {"type": "string"},
            "created_at": {"type": "string"},
            "password_set": {"type": "boolean"},
        },
    }
    schemas["User"] = member
    # links minted with a member's access token name the member (linkapi/views.py)
    schemas["Link"]["properties"]["member_id"] = {"type": "string"}
    schemas["UserCreated"] = {
        "type": "object",
        "required": ["user", "set_password_url", "set_password_expires_at"],
        "properties": {
            "user": {"$ref": "#/components/schemas/User"},
            "set_password_url": {"type": "string"},
            "set_password_expires_at": {"type": "string"},
        },
    }
    schemas["UserList"] = {
        "type": "object",
        "required": ["users"],
        "properties": {"users": {"type": "array", "items": {"$ref": "#/components/schemas/User"}}},
    }
    schemas["Me"] = {
        "type": "object",
        "required": ["user", "connection", "personal_room"],
        "properties": {
            "user": {"$ref": "#/components/schemas/User"},
            "connection": {"type": "object"},
            "personal_room": {"$ref": "#/components/schemas/Link"},
        },
    }
    problem_403 = {**errors["401"], "description": "A member token where a tenant key is needed"}
    doc["paths"]["/v1/users"] = {
        "post": {
            "summary": "Create a member (returns a one-time set-password link)",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/UserCreate"}}
                },
            },
            "responses": {"201": ok("UserCreated", "Created"), "403": problem_403, **errors},
        },
        "get": {
            "summary": "The tenant's members",
            "responses": {"200": ok("UserList", "OK"), "403": problem_403, **errors},
        },
    }
    doc["paths"]["/v1/me"] = {
        "get": {
            "summary": "Who connected (a member's OAuth access token), their personal room",
            "responses": {
                "200": ok("Me", "OK"),
                "403": {**errors["401"], "description": "A tenant key (not a member token)"},
                **errors,
            },
        }
    }
    doc["components"]["securitySchemes"]["bearer"]["description"] = (
        "Tenant API key, or a member's OAuth access token (docs/linkapi.md)"
    )
