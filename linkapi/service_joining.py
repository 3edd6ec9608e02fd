"""Joining (a part of ``LinkService``): join and room tokens minted for the API's
callers, and resolving a join through a link's slug (used by signalling)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from mediaserver.sfu.base import Refused
from mediaserver.state.models import GuestInvite, Link, Tenant

from .problems import ApiProblem, invalid
from .secrets_ import (
    InvalidToken,
    JoinClaims,
    RoomClaims,
    mint_room_token,
    sign_join_token,
    verify_join_token,
)
from .service_links import Links
from .views import iso, occurrence_window

__all__ = ["JoinGrant", "JoinRefusal", "Joining"]


@dataclass(frozen=True)
class JoinGrant:
    """What joining through a link resolved to."""

    link: Link
    role: str  # host | member | guest
    name: str
    user_id: str | None
    via_invite: GuestInvite | None


class JoinRefusal(Refused):
    """Joining through a link refused (code + message + details such as opens_at)."""


class Joining(Links):
    """Join and room tokens, and resolving a join through a link."""

    @staticmethod
    def _display_name(body: dict[str, Any]) -> str:
        name = str(body["name"]).strip()
        if not name or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in name):
            raise invalid("name", "must be a display name without control characters")
        return name

    async def create_join_token(
        self, tenant: Tenant, link_id: str, body: dict[str, Any]
    ) -> tuple[str, JoinClaims, Link]:
        link = await self.get_link(tenant, link_id)
        if link.revoked_at is not None:
            raise ApiProblem(409, "link-revoked", "Link revoked", "the link was revoked")
        if link.profile != "default":
            raise ApiProblem(409, "not-hosted", "Not hosted here", "explicit links have no room")
        body = {**body, "name": self._display_name(body)}
        ttl = float(body.get("ttl_seconds", self.config.linkapi.join_token_ttl_seconds))
        claims = JoinClaims(
            link_id=link.id,
            user_id=body["user_id"],
            name=body["name"],
            role=body["role"],
            expires_at=float(int(self.clock() + ttl)),
            token_id=secrets.token_urlsafe(9),
        )
        return sign_join_token(self._token_secret, claims), claims, link

    def check_adhoc_room(self, room: str) -> None:
        """409 when ad-hoc rooms are off, 422 for a room id a join could not use."""
        if not self.config.rooms.adhoc:
            raise ApiProblem(
                409,
                "adhoc-disabled",
                "Ad-hoc rooms disabled",
                "this server does not host ad-hoc rooms (rooms.adhoc is false)",
            )
        if not 1 <= len(room) <= 128 or not all(
            c.isascii() and (c.isalnum() or c in "-_.") for c in room
        ):
            raise invalid("room", "1 to 128 ASCII letters, digits, '-', '_' or '.'")
        if room.startswith("lnk_"):
            raise invalid("room", "must not start with 'lnk_' (the rooms of meeting links)")

    def create_room_token(
        self, tenant: Tenant, room: str, body: dict[str, Any]
    ) -> tuple[str, RoomClaims]:
        """A room token for an ad-hoc room in the tenant's namespace (docs/linkapi.md)."""
        self.check_adhoc_room(room)
        ttl = float(body.get("ttl_seconds", self.config.linkapi.join_token_ttl_seconds))
        return mint_room_token(
            self._token_secret,
            room,
            self._display_name(body),
            role=body["role"],
            user_id=body["user_id"],
            tenant_id=tenant.id,
            ttl_seconds=ttl,
            now=self.clock(),
        )

    # --- joining (used by signalling) ------------------------------------------------

    async def resolve_join(
        self, slug: str, *, token: str | None, invite: str | None, name: str | None
    ) -> JoinGrant:
        link = await self.store.get_link_by_slug(slug)
        if link is None:
            raise JoinRefusal("link_not_found", "no meeting with this link")
        is_host_slug = secrets.compare_digest(slug.encode(), link.host_slug.encode())
        if link.revoked_at is not None:
            raise JoinRefusal("link_revoked", "this meeting was cancelled")
        if link.profile != "default":
            raise JoinRefusal(
                "link_not_hosted",
                "this meeting is hosted elsewhere",
                join_url=link.explicit_join_url,
            )
        now = self.clock()
        # a series is checked against the window of its current (or next) occurrence
        valid_from, valid_until = occurrence_window(link, now) or (
            link.valid_from,
            link.valid_until,
        )
        if valid_from is not None and now < valid_from:
            raise JoinRefusal(
                "link_not_open",
                f"the meeting opens at {iso(valid_from)}",
                opens_at=iso(valid_from),
                closes_at=iso(valid_until),
            )
        if valid_until is not None and now > valid_until:
            raise JoinRefusal(
                "link_ended",
                f"the meeting ended at {iso(valid_until)}",
                opens_at=iso(valid_from),
                closes_at=iso(valid_until),
            )
        if token:
            try:
                claims = verify_join_token(self._token_secret, token, link_id=link.id, now=now)
            except InvalidToken as exc:
                raise JoinRefusal("invalid_token", f"join token rejected: {exc}") from None
            return JoinGrant(link, claims.role, claims.name, claims.user_id, None)
        if is_host_slug:
            return JoinGrant(link, "host", (name or "Host").strip(), None, None)
        if invite:
            inv = await self.store.get_guest_invite(invite)
            if inv is None or inv.link_id != link.id or inv.revoked_at is not None:
                raise JoinRefusal("invalid_invite", "this guest invite is not valid")
            return JoinGrant(link, "guest", "Guest", None, inv)
        if not name or not name.strip():
            raise JoinRefusal("name_required", "guests must give a name")
        return JoinGrant(link, "guest", name.strip(), None, None)
