"""The OpenAPI 3.1 document of the link API, and request validation from its schemas.

The document is the single source of truth: request bodies are validated against the
same schemas (JSON Schema 2020-12), and the tests validate every response against it.

It is assembled here: the schemas of ``openapi_schemas``, the paths of ``openapi_paths``
(both built from the pieces in ``openapi_parts``), then the recording, management and
account calls add theirs.
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
from .openapi_parts import (
    _ERRORS,
    _EVENT_ID_REQUIRED,
    _EVENT_TIME,
    _LIMIT,
    _LINK_ID,
    _NAME_PATTERN,
    _SAFE,
    _URL,
    EVENT_TYPES,
    _body,
    _ok,
)
from .openapi_paths import PATHS
from .openapi_schemas import SCHEMAS
from .recordings_openapi import add_recording_api

__all__ = ["EVENT_TYPES", "OPENAPI", "schema_errors", "validator_for"]

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "mediaserver link API",
        "version": "1.0.0",
        "description": "Meeting links for calendar events. See docs/linkapi.md.",
    },
    "security": [{"bearer": []}],
    "paths": PATHS,
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
