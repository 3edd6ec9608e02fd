"""Durable records: tenants, API keys, links, guest invites, webhook endpoints, outbox.

Plain frozen dataclasses with ``to_dict``/``from_dict`` (JSON-compatible) so every store
implementation serialises them the same way. Times are Unix seconds (float).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = [
    "ApiKey",
    "DeliveryAttempt",
    "GuestInvite",
    "Link",
    "OutboxEvent",
    "Tenant",
    "WebhookEndpoint",
    "from_dict",
    "to_dict",
]

T = TypeVar("T")


def to_dict(obj: Any) -> dict[str, Any]:
    """A JSON-compatible dict of a record (tuples become lists)."""
    out = dataclasses.asdict(obj)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a record; unknown keys are ignored (forward compatible on read)."""
    names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs = {}
    for k, v in data.items():
        if k in names:
            kwargs[k] = tuple(v) if isinstance(v, list) and k in _TUPLE_FIELDS else v
    return cls(**kwargs)


_TUPLE_FIELDS = frozenset({"events", "scopes"})


@dataclass(frozen=True)
class Tenant:
    id: str  # "tn_..."
    name: str
    created_at: float
    guest_policy: str = "lobby"  # tenant default: allow | lobby | deny
    rate_limit_per_minute: int | None = None  # None: linkapi.rate_limit_per_minute
    rate_limit_burst: int | None = None  # None: linkapi.rate_limit_burst
    recording: str = "off"  # tenant default for new links: off | host | always


@dataclass(frozen=True)
class ApiKey:
    """An API key: ``msk_<id>_<secret>``; only a SHA-256 of the secret is stored."""

    id: str
    tenant_id: str
    secret_hash: str  # hex sha256 of the secret part
    created_at: float
    revoked_at: float | None = None
    # "admin" (everything, API keys too) or "links" (everything but API keys); a key
    # stored before scopes existed (CLI-made) reads as an admin key
    scopes: tuple[str, ...] = ("admin",)
    name: str | None = None


@dataclass(frozen=True)
class Link:
    """A meeting link: event-bound (``kind="event"``) or a personal room."""

    id: str  # "lnk_..."
    tenant_id: str
    kind: str  # "event" | "personal"
    slug: str  # the join URL's secret part (>= 128 random bits)
    host_slug: str  # the host URL's secret part (a different secret)
    profile: str = "default"  # "default" (our room) | "explicit" (caller's URL, no room)
    explicit_join_url: str | None = None
    provider_description: str | None = None
    calendar_id: str | None = None
    event_id: str | None = None
    recurrence_id: str | None = None
    user_id: str | None = None  # personal rooms
    event: dict[str, Any] = field(default_factory=dict)  # summary, start, end, tzid, ...
    options: dict[str, Any] = field(default_factory=dict)
    valid_from: float | None = None  # joinable from (start - join_before_minutes)
    valid_until: float | None = None  # joinable until (end + grace_after_minutes)
    created_at: float = 0.0
    updated_at: float = 0.0
    revoked_at: float | None = None
    version: int = 1
    # a recurring series: occurrences changed on their own, by original start (RFC 3339
    # UTC) -> {"start", "end", "cancelled"} (linkapi/calendar_event.py)
    overrides: dict[str, Any] = field(default_factory=dict)
    # the member an OAuth client minted the link for (linkapi/accounts): they are its host
    member_id: str | None = None


@dataclass(frozen=True)
class GuestInvite:
    id: str  # "gi_..."
    link_id: str
    tenant_id: str
    token: str  # secret part of the invite URL
    max_guests: int
    created_at: float
    revoked_at: float | None = None


@dataclass(frozen=True)
class WebhookEndpoint:
    id: str  # "wh_..."
    tenant_id: str
    url: str
    secret: str
    events: tuple[str, ...]  # empty = all events
    created_at: float
    disabled_at: float | None = None


@dataclass(frozen=True)
class OutboxEvent:
    """One event for one endpoint. Events with the same ``ordering_key`` for the same
    endpoint are delivered strictly in ``seq`` order."""

    id: str  # "ob_..." unique per (event, endpoint)
    event_id: str  # the event's id, the same for every endpoint it goes to
    tenant_id: str
    endpoint_id: str
    type: str
    ordering_key: str  # link id (per-room order)
    payload: dict[str, Any]
    created_at: float
    seq: int = 0  # assigned by the store, increasing
    attempts: int = 0
    next_attempt_at: float = 0.0
    delivered_at: float | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class DeliveryAttempt:
    outbox_id: str
    attempt: int
    at: float
    status: int | None  # HTTP status, None if no response
    error: str | None
    duration_ms: float
