"""Meeting links (a part of ``LinkService``): minting an event's link and keeping it
in line with the event as sent again, changing and revoking links (each change
compare-and-set with its webhook event), personal rooms and guest invites."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

from mediaserver.state import ConflictError
from mediaserver.state.models import GuestInvite, Link, Tenant

from .calendar_event import (
    CalendarEvent,
    FieldError,
    apply_instance,
    link_window,
    read_event,
)
from .problems import ApiProblem, invalid
from .secrets_ import new_id, new_slug
from .service_core import not_found
from .service_events import WebhookEvents
from .views import DEFAULT_OPTIONS

__all__ = ["Links"]


class Links(WebhookEvents):
    """Links, personal rooms and guest invites; every change emits its webhook event."""

    @staticmethod
    def _window(
        event: dict[str, Any], options: dict[str, Any], overrides: dict[str, Any]
    ) -> tuple[float, float | None]:
        try:
            return link_window(event, options, overrides)
        except FieldError as exc:
            raise invalid(exc.field, exc.message) from None

    @staticmethod
    def _options(
        given: dict[str, Any] | None, base: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return {**DEFAULT_OPTIONS, **(base or {}), **(given or {})}

    @staticmethod
    def _read_event(raw: dict[str, Any]) -> CalendarEvent:
        try:
            return read_event(raw)
        except FieldError as exc:
            raise invalid(exc.field, exc.message) from None

    @staticmethod
    def _conferencing(conferencing: dict[str, Any]) -> str:
        """The profile of a request's ``conferencing`` (``profile`` or Cronofy's
        ``profile_id``); 422 for the profile rules."""
        profile = conferencing.get("profile", conferencing.get("profile_id", "default"))
        if conferencing.get("profile_id", profile) != profile:
            raise invalid("conferencing.profile_id", "differs from conferencing.profile")
        if profile == "explicit" and not conferencing.get("join_url"):
            raise invalid("conferencing.join_url", "required for the explicit profile")
        if profile == "default" and ("join_url" in conferencing):
            raise invalid("conferencing.join_url", "only for the explicit profile")
        return str(profile)

    async def create_event_link(
        self,
        tenant: Tenant,
        body: dict[str, Any],
        idempotency_key: str | None,
        *,
        member_id: str | None = None,
    ) -> tuple[Link, bool]:
        """Mint the link of an event, or bring the event's link in line with the event
        as sent now (a calendar sync re-sends whole events; docs/linkapi.md §4).
        ``member_id``: minted with a member's OAuth token, for that member (their own
        events and idempotency keys: members of a tenant do not see each other's)."""
        raw = dict(body["event"])
        ev = self._read_event(raw)
        conferencing = body.get("conferencing") or {}
        profile = self._conferencing(conferencing)
        natural = "event\x00{}\x00{}\x00{}".format(
            ev.calendar_id or "", ev.link_event_id, ev.recurrence_id or ""
        )
        if member_id is not None:
            natural = f"member\x00{member_id}\x00{natural}"
            if idempotency_key is not None:
                idempotency_key = f"member\x00{member_id}\x00{idempotency_key}"
        if ev.cancelled:
            existing = await self._by_natural_key(tenant, ev, member_id)
            if existing is None:
                raise not_found("link for this event (nothing to cancel)")
            return await self._apply_event(tenant, existing.id, ev, raw, body), False
        overrides = apply_instance({}, ev) if ev.series_id is not None else {}
        options = self._options(body.get("options"), _tenant_options(tenant))
        valid_from, valid_until = self._window(raw, options, overrides)
        now = self.clock()
        link = Link(
            id=new_id("lnk"),
            tenant_id=tenant.id,
            kind="event",
            slug=new_slug(),
            host_slug=new_slug(),
            profile=profile,
            explicit_join_url=conferencing.get("join_url"),
            provider_description=conferencing.get("provider_description"),
            calendar_id=ev.calendar_id,
            event_id=ev.link_event_id,
            recurrence_id=ev.recurrence_id,
            event=raw,
            options=options,
            valid_from=valid_from,
            valid_until=valid_until,
            created_at=now,
            updated_at=now,
            overrides=overrides,
            member_id=member_id,
        )
        events = await self.events_for(
            tenant.id, "link.created", link.id, {"link": self.link_json(link)}
        )
        stored, created = await self.store.create_link(
            link, natural, idempotency_key, events=events
        )
        if created:
            if events:
                self.wake_dispatcher()
            return stored, True
        if (stored.calendar_id, stored.event_id, stored.recurrence_id) != (
            link.calendar_id,
            link.event_id,
            link.recurrence_id,
        ):
            raise ApiProblem(
                409,
                "idempotency-key-reused",
                "Idempotency-Key reused",
                "this Idempotency-Key was used for another event",
            )
        return await self._apply_event(tenant, stored.id, ev, raw, body), False

    async def _by_natural_key(
        self, tenant: Tenant, ev: CalendarEvent, member_id: str | None = None
    ) -> Link | None:
        for link in await self.store.find_links(
            tenant.id, event_id=ev.link_event_id, calendar_id=ev.calendar_id, limit=500
        ):
            if (link.kind, link.calendar_id, link.recurrence_id, link.member_id) == (
                "event",
                ev.calendar_id,
                ev.recurrence_id,
                member_id,
            ):
                return link
        return None

    async def _apply_event(
        self, tenant: Tenant, link_id: str, ev: CalendarEvent, raw: dict[str, Any], body: Any
    ) -> Link:
        """The event as sent again: a cancelled event revokes its link (a cancelled
        occurrence only cancels that occurrence); otherwise the event, the options given
        and the window are updated. The same event sent twice changes nothing."""
        if ev.cancelled and ev.series_id is None:
            return await self.revoke_link(tenant, link_id)
        conferencing = body.get("conferencing") or {}

        def change(link: Link) -> Link:
            if link.revoked_at is not None:
                return link  # a revoked link stays revoked (§7)
            if conferencing and self._conferencing(conferencing) != link.profile:
                raise invalid("conferencing.profile", f"cannot change (is {link.profile})")
            options = self._options(body.get("options"), link.options)
            if ev.series_id is not None:
                event, overrides = link.event, apply_instance(link.overrides, ev)
            else:
                event, overrides = raw, link.overrides
            valid_from, valid_until = self._window(event, options, overrides)
            new = dataclasses.replace(
                link,
                event=event,
                options=options,
                overrides=overrides,
                valid_from=valid_from,
                valid_until=valid_until,
                explicit_join_url=conferencing.get("join_url", link.explicit_join_url),
                provider_description=conferencing.get(
                    "provider_description", link.provider_description
                ),
            )
            return link if new == link else new

        return await self._update(tenant, link_id, change, "link.updated")

    async def get_link(self, tenant: Tenant, link_id: str) -> Link:
        link = await self.store.get_link(link_id)
        if link is None or link.tenant_id != tenant.id:  # a foreign link is just "not found"
            raise not_found()
        return link

    async def find_links(
        self, tenant: Tenant, *, event_id: str | None, calendar_id: str | None, limit: int
    ) -> list[Link]:
        return await self.store.find_links(
            tenant.id, event_id=event_id, calendar_id=calendar_id, limit=limit
        )

    async def _update(
        self,
        tenant: Tenant,
        link_id: str,
        change: Callable[[Link], Link],
        event_type: str | None = None,
    ) -> Link:
        """Compare-and-set a change; its webhook event is written in the same step."""
        for _ in range(5):
            link = await self.get_link(tenant, link_id)
            new = change(link)
            if new is link:
                return link
            new = dataclasses.replace(new, updated_at=self.clock(), version=link.version + 1)
            events = (
                await self.events_for(
                    new.tenant_id, event_type, new.id, {"link": self.link_json(new)}
                )
                if event_type
                else []
            )
            try:
                stored = await self.store.update_link(new, link.version, events=events)
            except ConflictError:
                await asyncio.sleep(0.01)
                continue
            if events:
                self.wake_dispatcher()
            return stored
        raise ApiProblem(409, "conflict", "Conflict", "the link changed concurrently; retry")

    async def update_link(self, tenant: Tenant, link_id: str, patch: dict[str, Any]) -> Link:
        def change(link: Link) -> Link:
            if link.revoked_at is not None:
                raise ApiProblem(
                    409, "link-revoked", "Link revoked", "a revoked link cannot change"
                )
            if link.kind != "event" and "event" in patch:
                raise invalid("event", "a personal room has no event")
            event = {**link.event, **(patch.get("event") or {})}
            options = self._options(patch.get("options"), link.options)
            valid_from, valid_until = link.valid_from, link.valid_until
            if link.kind == "event":
                self._read_event(event)
                valid_from, valid_until = self._window(event, options, link.overrides)
            new = dataclasses.replace(
                link, event=event, options=options, valid_from=valid_from, valid_until=valid_until
            )
            return link if new == link else new  # the same patch again: no write, no webhook

        return await self._update(tenant, link_id, change, "link.updated")

    async def revoke_link(self, tenant: Tenant, link_id: str) -> Link:
        def change(link: Link) -> Link:
            if link.revoked_at is not None:
                return link  # already revoked: no write, no second event
            return dataclasses.replace(link, revoked_at=self.clock())

        link = await self._update(tenant, link_id, change, "link.revoked")
        if self.on_revoked is not None:
            result = self.on_revoked(link)
            if asyncio.iscoroutine(result):
                await result
        return link

    async def personal_room(
        self, tenant: Tenant, user_id: str, body: dict[str, Any]
    ) -> tuple[Link, bool]:
        now = self.clock()
        link = Link(
            id=new_id("lnk"),
            tenant_id=tenant.id,
            kind="personal",
            slug=new_slug(),
            host_slug=new_slug(),
            user_id=user_id,
            event={"summary": body.get("display_name") or f"{user_id}'s room"},
            options=self._options(body.get("options"), _tenant_options(tenant)),
            created_at=now,
            updated_at=now,
        )
        events = await self.events_for(
            tenant.id, "link.created", link.id, {"link": self.link_json(link)}
        )
        stored, created = await self.store.create_link(
            link, f"personal\x00{user_id}", None, events=events
        )
        if created and events:
            self.wake_dispatcher()
        elif not created and (body.get("options") or body.get("display_name")):

            def change(ln: Link) -> Link:
                new = dataclasses.replace(
                    ln,
                    options=self._options(body.get("options"), ln.options),
                    event={
                        **ln.event,
                        **({"summary": body["display_name"]} if body.get("display_name") else {}),
                    },
                )
                return ln if new == ln else new  # the same body again: no webhook

            stored = await self._update(tenant, stored.id, change, "link.updated")
        return stored, created

    async def rotate_personal_room(self, tenant: Tenant, user_id: str) -> Link:
        links = await self.store.find_links(tenant.id, user_id=user_id, limit=1)
        if not links or links[0].kind != "personal":
            raise not_found("personal room")
        link = await self._update(
            tenant,
            links[0].id,
            lambda ln: dataclasses.replace(ln, slug=new_slug(), host_slug=new_slug()),
            "link.updated",
        )
        return link

    async def create_guest_invite(
        self, tenant: Tenant, link_id: str, body: dict[str, Any]
    ) -> GuestInvite:
        link = await self.get_link(tenant, link_id)
        if link.revoked_at is not None:
            raise ApiProblem(409, "link-revoked", "Link revoked", "the link was revoked")
        if link.profile != "default":
            raise ApiProblem(409, "not-hosted", "Not hosted here", "explicit links have no room")
        invite = GuestInvite(
            id=new_id("gi"),
            link_id=link.id,
            tenant_id=tenant.id,
            token=new_slug(),
            max_guests=int(body.get("max_guests", 5)),
            created_at=self.clock(),
        )
        await self.store.add_guest_invite(invite)
        return invite


def _tenant_options(tenant: Tenant) -> dict[str, Any]:
    """The tenant's defaults for a new link's options."""
    return {"guest_policy": tenant.guest_policy, "recording": tenant.recording}
