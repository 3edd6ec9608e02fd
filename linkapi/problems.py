"""RFC 9457 problem details (application/problem+json)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from mediaserver.state.redis_conn import UNREACHABLE
from mediaserver.telemetry import get_logger

__all__ = ["ApiProblem", "invalid", "problem_middleware", "problem_response", "unprocessable"]

PROBLEM_BASE = "https://mediaserver.dev/problems/"
CONTENT_TYPE = "application/problem+json"


class ApiProblem(Exception):
    def __init__(
        self,
        status: int,
        kind: str,
        title: str,
        detail: str | None = None,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.kind = kind
        self.title = title
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra or {}


def invalid(field: str, message: str) -> ApiProblem:
    """A 422 validation problem about one field."""
    return unprocessable([{"field": field, "message": message}])


def unprocessable(errors: list[dict[str, str]]) -> ApiProblem:
    """A 422 validation problem listing field errors (``detail`` repeats five)."""
    return ApiProblem(
        422,
        "validation-error",
        "Invalid request",
        "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]),
        errors=errors,
    )


def problem_response(problem: ApiProblem, instance: str | None = None) -> web.Response:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + problem.kind,
        "title": problem.title,
        "status": problem.status,
    }
    if problem.detail:
        body["detail"] = problem.detail
    if instance:
        body["instance"] = instance
    if problem.errors:
        body["errors"] = problem.errors
    body.update(problem.extra)
    return web.Response(
        status=problem.status,
        body=json.dumps(body).encode(),
        content_type=CONTENT_TYPE,
        headers=problem.headers,
    )


_STATUS_KIND = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("body-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
}

#: Retry-After of a 503 while the store is unreachable (a Redis restart or failover).
RETRY_AFTER_SECONDS = 2

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error under /v1 is problem+json, including aiohttp's own 404/405/413."""
    if not request.path.startswith("/v1"):
        return await handler(request)
    try:
        return await handler(request)
    except ApiProblem as problem:
        return problem_response(problem, request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_problem(request, exc)
    except UNREACHABLE as exc:  # the shared store (Redis) is away: a retry will work
        get_logger().warning("link API store unavailable", path=request.path, error=str(exc))
        return problem_response(
            ApiProblem(
                503,
                "unavailable",
                "Service unavailable",
                "the store is unreachable; retry later",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            ),
            request.path,
        )
    except Exception:
        get_logger().exception("link API request failed", path=request.path)
        return problem_response(
            ApiProblem(500, "internal-error", "Internal error", "the request failed; retry later"),
            request.path,
        )


def _http_problem(request: web.Request, exc: web.HTTPException) -> web.Response:
    kind, title = _STATUS_KIND.get(exc.status, ("http-error", exc.reason))
    detail = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else None
    return problem_response(
        ApiProblem(exc.status, kind, title, detail, headers=_keep_headers(exc)),
        request.path,
    )


_KEPT_HEADERS = (
    "allow",
    "retry-after",
    "ratelimit-limit",  # set by the rate limit on every authenticated answer
    "ratelimit-remaining",
    "ratelimit-reset",
)


def _keep_headers(exc: web.HTTPException) -> dict[str, str]:
    return {k: v for k, v in exc.headers.items() if k.lower() in _KEPT_HEADERS}
