"""JSON views of the link API's records (a mixin of ``LinkService``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from mediaserver.config import Config
from mediaserver.state.models import GuestInvite, Link, WebhookEndpoint

from .calendar_event import FieldError, join_window
from .invitation import build_invitation
from .openapi import EVENT_TYPES

__all__ = ["DEFAULT_OPTIONS", "JsonViews", "iso"]

DEFAULT_OPTIONS: dict[str, Any] = {
    "waiting_room": True,
    "guest_policy": "lobby",
    "max_participants": 0,  # 0: the server's rooms.max_participants
    "max_guests": 0,  # 0: no separate cap on guests
    "join_before_minutes": 15,
    "grace_after_minutes": 60,
    "recording": "off",  # off | host (hosts start/stop) | always (the tenant's default)
}


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def is_series(link: Link) -> bool:
    return link.kind == "event" and bool(
        link.overrides
        or link.event.get("recurrence")
        or link.event.get("recurring_event_id")
        or link.event.get("recurringEventId")
    )


def occurrence_window(link: Link, now: float) -> tuple[float, float] | None:
    """The window of the series occurrence a join at ``now`` is checked against."""
    if not is_series(link):
        return None
    try:
        return join_window(link.event, {**DEFAULT_OPTIONS, **link.options}, link.overrides, now)
    except FieldError:  # stored before a rule became stricter: the link's own window
        return None


class JsonViews:
    config: Config
    public_url: str

    def now(self) -> float:
        raise NotImplementedError

    def join_url(self, link: Link) -> str:
        if link.profile == "explicit" and link.explicit_join_url:
            return link.explicit_join_url
        return f"{self.public_url}/j/{link.slug}"

    def link_json(self, link: Link) -> dict[str, Any]:
        join_url = self.join_url(link)
        options = {**DEFAULT_OPTIONS, **link.options}
        if not options["max_participants"]:
            options["max_participants"] = self.config.rooms.max_participants
        return {
            "id": link.id,
            "kind": link.kind,
            "status": "revoked" if link.revoked_at is not None else "active",
            "profile": link.profile,
            "provider_description": link.provider_description,
            "join_url": join_url,
            "host_url": (
                f"{self.public_url}/j/{link.host_slug}" if link.profile == "default" else None
            ),
            "user_id": link.user_id,
            "valid_from": iso(link.valid_from),
            "valid_until": iso(link.valid_until),
            "event": link.event,
            "options": options,
            "created_at": iso(link.created_at),
            "updated_at": iso(link.updated_at),
            "revoked_at": iso(link.revoked_at),
            "series": self.series_json(link),
            "invitation": build_invitation(
                join_url=join_url,
                summary=link.event.get("summary"),
                provider=link.provider_description or "mediaserver video meeting",
            ),
            # minted with a member's OAuth token: that member (linkapi/accounts)
            **({"member_id": link.member_id} if link.member_id else {}),
        }

    def series_json(self, link: Link) -> dict[str, Any] | None:
        if not is_series(link):
            return None
        window = occurrence_window(link, self.now())
        return {
            "current_window": (
                None
                if window is None
                else {"valid_from": iso(window[0]), "valid_until": iso(window[1])}
            ),
            "overrides": [
                {
                    "original_start": key,
                    "status": "cancelled" if ov.get("cancelled") else "moved",
                    "start": None if ov.get("cancelled") else iso(ov["start"]),
                    "end": None if ov.get("cancelled") else iso(ov["end"]),
                }
                for key, ov in sorted(link.overrides.items())
            ],
        }

    def invite_json(self, invite: GuestInvite, link: Link) -> dict[str, Any]:
        return {
            "id": invite.id,
            "link_id": invite.link_id,
            "url": f"{self.public_url}/j/{link.slug}?invite={quote(invite.token)}",
            "max_guests": invite.max_guests,
            "created_at": iso(invite.created_at),
        }

    @staticmethod
    def report_json(report: dict[str, Any]) -> dict[str, Any]:
        """A stored meeting report with RFC 3339 times."""
        return {
            "room_id": report["room_id"],
            "link_id": report["link_id"],
            "started_at": iso(report["started_at"]),
            "finished_at": iso(report["finished_at"]),
            "reason": report["reason"],
            "participants": [
                {
                    "participant_id": p["participant_id"],
                    "name": p["name"],
                    "role": p["role"],
                    "user_id": p["user_id"],
                    "joined_at": iso(p["joined_at"]),
                    "left_at": iso(p["left_at"]),
                    "speaking_seconds": p["speaking_seconds"],
                }
                for p in report["participants"]
            ],
        }

    @staticmethod
    def webhook_json(ep: WebhookEndpoint, secret: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": ep.id,
            "url": ep.url,
            "events": list(ep.events) or list(EVENT_TYPES),
            "created_at": iso(ep.created_at),
            "active": ep.disabled_at is None,
        }
        if secret is not None:
            out["secret"] = secret
        return out
