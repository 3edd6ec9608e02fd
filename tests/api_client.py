"""An HTTP client for the link API that validates every response against the
OpenAPI document (status code declared, body matches the declared schema, the
required headers are there: the RateLimit-* ones on every authenticated answer)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import aiohttp
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from linkapi.openapi import OPENAPI

_REGISTRY: Registry[Any] = Registry().with_resource(
    "urn:test:openapi", Resource.from_contents(OPENAPI, default_specification=DRAFT202012)
)


def _match(path: str) -> tuple[str, dict[str, Any]] | None:
    # literal paths before templated ones (/webhooks/deliveries vs /webhooks/{id})
    for template, item in sorted(OPENAPI["paths"].items(), key=lambda kv: kv[0].count("{")):
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path):
            return template, item
    return None


def _validate(ref: str, body: Any, what: str) -> None:
    validator = Draft202012Validator(
        {"$ref": ref.replace("#", "urn:test:openapi#")},
        registry=_REGISTRY,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    errors = list(validator.iter_errors(body))
    assert not errors, f"{what}: {errors[0].message} at {list(errors[0].path)}"


def validate_response(
    method: str,
    path: str,
    status: int,
    ctype: str,
    body: Any,
    headers: Mapping[str, str] | None = None,
) -> None:
    matched = _match(path.split("?")[0])
    if matched is None:  # an undocumented path: must be a 404 problem
        assert status == 404 and ctype == "application/problem+json", (path, status)
        _validate("#/components/schemas/Problem", body, f"{method} {path}")
        if headers is not None:  # authenticated (a 401 would come first): rate headers
            missing = [h for h in RATE_HEADERS if h not in headers]
            assert not missing, f"{method} {path} {status}: headers {missing} missing"
        return
    template, item = matched
    op = item.get(method.lower())
    assert op is not None, f"{method} {template} is not documented"
    response = op["responses"].get(str(status))
    assert response is not None, f"{method} {template}: status {status} is not documented"
    media = ctype.split(";")[0].strip()
    content = response.get("content", {})
    assert media in content, f"{method} {template} {status}: content type {media} undocumented"
    _validate(content[media]["schema"]["$ref"], body, f"{method} {path} {status}")
    if headers is not None:
        required = [n for n, h in response.get("headers", {}).items() if h.get("required")]
        missing = [n for n in required if n not in headers]
        assert not missing, f"{method} {template} {status}: headers {missing} missing"


RATE_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


class ApiClient:
    def __init__(self, base_url: str, key: str | None) -> None:
        self.base_url = base_url
        self.key = key
        self.session = aiohttp.ClientSession()

    async def close(self) -> None:
        await self.session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        key: str | None = "default",
    ) -> tuple[int, Any, Any]:
        hdrs = dict(headers or {})
        use_key = self.key if key == "default" else key
        if use_key:
            hdrs["Authorization"] = f"Bearer {use_key}"
        if json_body is not None:
            data = json.dumps(json_body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        async with self.session.request(
            method, self.base_url + path, data=data, headers=hdrs
        ) as resp:
            raw = await resp.read()
            body = json.loads(raw) if raw else None
            validate_response(method, path, resp.status, resp.content_type, body, resp.headers)
            return resp.status, body, resp.headers

    async def get(self, path: str, **kw: Any) -> tuple[int, Any, Any]:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any, Any]:
        return await self.request("POST", path, json_body=body, **kw)

    async def patch(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any, Any]:
        return await self.request("PATCH", path, json_body=body, **kw)

    async def put(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any, Any]:
        return await self.request("PUT", path, json_body=body, **kw)

    async def delete(self, path: str, **kw: Any) -> tuple[int, Any, Any]:
        return await self.request("DELETE", path, **kw)
