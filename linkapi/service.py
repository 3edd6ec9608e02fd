"""Link API business logic over the durable store (no HTTP here)."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mediaserver.config import RECORDING_POLICIES, Config
from mediaserver.sfu.base import Refused
from mediaserver.state import ConflictError, Store
from mediaserver.state.models import (
    ApiKey,
    GuestInvite,
    Link,
    OutboxEvent,
    Tenant,
    WebhookEndpoint,
)

from .calendar_event import (
    CalendarEvent,
    FieldError,
    apply_instance,
    link_window,
    read_event,
)
from .inputs import parse_rfc3339
from .openapi import EVENT_TYPES
from .problems import ApiProblem, invalid
from .secrets_ import (
    InvalidToken,
    JoinClaims,
    RoomClaims,
    hash_secret,
    load_token_secret,
    mint_room_token,
    new_api_key,
    new_id,
    new_slug,
    parse_api_key,
    sign_join_token,
    verify_join_token,
    verify_secret,
)
from .views import DEFAULT_OPTIONS, JsonViews, iso, occurrence_window

__all__ = ["JoinGrant", "JoinRefusal", "LinkService", "iso", "parse_time"]


def parse_time(value: str, field: str) -> float:
    """RFC 3339 date-time with an offset (or Z), years MIN_YEAR-MAX_YEAR → Unix seconds."""
    try:
        return parse_rfc3339(value).timestamp()
    except ValueError as exc:
        raise _invalid(field, str(exc)) from None


def _invalid(field: str, message: str) -> ApiProblem:
    return invalid(field, message)


def _not_found(what: str = "link") -> ApiProblem:
    return ApiProblem(404, "not-found", "Not found", f"no such {what}")


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


EventSink = Callable[[str, str, str, dict[str, Any]], None]


class LinkService(JsonViews):
    def __init__(self, store: Store, config: Config, clock: Callable[[], float] = time.time):
        self.store = store
        self.config = config
        self.clock = clock
        self.public_url = config.server.effective_public_url
        self._token_secret = b""
        self.on_revoked: Callable[[Link], Any] | None = None
        #: Called with (link, invite id) after a guest invite's revocation is stored.
        self.on_invite_revoked: Callable[[Link, str], Any] | None = None
        self.wake_dispatcher: Callable[[], None] = lambda: None

    def now(self) -> float:
        return self.clock()

    async def start(self) -> None:
        self._token_secret = await load_token_secret(self.config.linkapi.token_secret, self.store)

    @property
    def token_secret(self) -> bytes:
        """The server's signing secret (join tokens; participant keys, with their own
        purpose prefix). Set by start()."""
        return self._token_secret

    # --- tenants and keys (CLI) ------------------------------------------------------

    async def create_tenant(
        self,
        name: str,
        guest_policy: str = "lobby",
        *,
        rate_limit_per_minute: int | None = None,
        rate_limit_burst: int | None = None,
        recording: str = "off",
    ) -> tuple[Tenant, str]:
        if guest_policy not in ("allow", "lobby", "deny"):
            raise ValueError(f"guest policy must be allow, lobby or deny, not {guest_policy!r}")
        if recording not in RECORDING_POLICIES:
            raise ValueError(f"recording must be off, host or always, not {recording!r}")
        for value in (rate_limit_per_minute, rate_limit_burst):
            if value is not None and not 1 <= value <= 1_000_000:
                raise ValueError("rate limits must be between 1 and 1000000")
        tenant = Tenant(
            id=new_id("tn"),
            name=name,
            created_at=self.clock(),
            guest_policy=guest_policy,
            rate_limit_per_minute=rate_limit_per_minute,
            rate_limit_burst=rate_limit_burst,
            recording=recording,
        )
        await self.store.create_tenant(tenant)
        key = await self.create_api_key(tenant.id)
        return tenant, key

    async def create_api_key(self, tenant_id: str) -> str:
        if await self.store.get_tenant(tenant_id) is None:
            raise KeyError(tenant_id)
        key_id, secret, full = new_api_key()
        await self.store.add_api_key(
            ApiKey(
                id=key_id,
                tenant_id=tenant_id,
                secret_hash=hash_secret(secret),
                created_at=self.clock(),
            )
        )
        return full

    async def authenticate(self, authorization: str | None) -> tuple[Tenant, str]:
        """The tenant and the API key id of a request, or a 401 problem."""

        def unauthorized(detail: str) -> ApiProblem:
            return ApiProblem(
                401,
                "unauthorized",
                "Unauthorized",
                detail,
                headers={"WWW-Authenticate": 'Bearer realm="mediaserver"'},
            )

        if not authorization or not authorization.startswith("Bearer "):
            raise unauthorized("send 'Authorization: Bearer <API key>'")
        parsed = parse_api_key(authorization[7:].strip())
        if parsed is None:
            raise unauthorized("malformed API key")
        key_id, secret = parsed
        key = await self.store.get_api_key(key_id)
        # compare against a dummy hash when the key is unknown: same work either way
        ok = verify_secret(secret, key.secret_hash if key else "0" * 64)
        if key is None or not ok:
            raise unauthorized("unknown API key")
        if key.revoked_at is not None:
            raise unauthorized("API key revoked")
        tenant = await self.store.get_tenant(key.tenant_id)
        if tenant is None:
            raise unauthorized("unknown tenant")
        return tenant, key.id

    # --- links -----------------------------------------------------------------------

    @staticmethod
    def _window(
        event: dict[str, Any], options: dict[str, Any], overrides: dict[str, Any]
    ) -> tuple[float, float | None]:
        try:
            return link_window(event, options, overrides)
        except FieldError as exc:
            raise _invalid(exc.field, exc.message) from None

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
            raise _invalid(exc.field, exc.message) from None

    @staticmethod
    def _conferencing(conferencing: dict[str, Any]) -> str:
        """The profile of a request's ``conferencing`` (``profile`` or Cronofy's
        ``profile_id``); 422 for the profile rules."""
        profile = conferencing.get("profile", conferencing.get("profile_id", "default"))
        if conferencing.get("profile_id", profile) != profile:
            raise _invalid("conferencing.profile_id", "differs from conferencing.profile")
        if profile == "explicit" and not conferencing.get("join_url"):
            raise _invalid("conferencing.join_url", "required for the explicit profile")
        if profile == "default" and ("join_url" in conferencing):
            raise _invalid("conferencing.join_url", "only for the explicit profile")
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
                raise _not_found("link for this event (nothing to cancel)")
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
                raise _invalid("conferencing.profile", f"cannot change (is {link.profile})")
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
            raise _not_found()
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
                raise _invalid("event", "a personal room has no event")
            event = {**link.event, **(patch.get("event") or {})}
            options = self._options(patch.get("options"), link.options)
            valid_from, valid_until = link.valid_from, link.valid_until
            if link.kind == "event":
                self._read_event(event)
                valid_from, valid_until = self._window(event, options, link.overrides)
            return dataclasses.replace(
                link, event=event, options=options, valid_from=valid_from, valid_until=valid_until
            )

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
            stored = await self._update(
                tenant,
                stored.id,
                lambda ln: dataclasses.replace(
                    ln,
                    options=self._options(body.get("options"), ln.options),
                    event={
                        **ln.event,
                        **({"summary": body["display_name"]} if body.get("display_name") else {}),
                    },
                ),
                "link.updated",
            )
        return stored, created

    async def rotate_personal_room(self, tenant: Tenant, user_id: str) -> Link:
        links = await self.store.find_links(tenant.id, user_id=user_id, limit=1)
        if not links or links[0].kind != "personal":
            raise _not_found("personal room")
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

    @staticmethod
    def _display_name(body: dict[str, Any]) -> str:
        name = str(body["name"]).strip()
        if not name or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in name):
            raise _invalid("name", "must be a display name without control characters")
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
            raise _invalid("room", "1 to 128 ASCII letters, digits, '-', '_' or '.'")
        if room.startswith("lnk_"):
            raise _invalid("room", "must not start with 'lnk_' (the rooms of meeting links)")

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

    # --- webhooks --------------------------------------------------------------------

    async def add_webhook(
        self, tenant: Tenant, body: dict[str, Any]
    ) -> tuple[WebhookEndpoint, str]:
        from .webhooks import webhook_url_problem

        allow_private = self.config.linkapi.allow_private_webhook_urls
        problem = await webhook_url_problem(body["url"], allow_private)
        if problem:
            raise _invalid("url", problem)
        secret = body.get("secret") or f"whsec_{secrets.token_urlsafe(32)}"
        endpoint = WebhookEndpoint(
            id=new_id("wh"),
            tenant_id=tenant.id,
            url=body["url"],
            secret=secret,
            events=tuple(body.get("events") or ()),
            created_at=self.clock(),
        )
        await self.store.add_webhook_endpoint(endpoint)
        return endpoint, secret

    async def disable_webhook(self, tenant: Tenant, webhook_id: str) -> WebhookEndpoint:
        ep = await self.store.get_webhook_endpoint(webhook_id)
        if ep is None or ep.tenant_id != tenant.id:
            raise _not_found("webhook")
        await self.store.disable_webhook_endpoint(webhook_id, self.clock())
        got = await self.store.get_webhook_endpoint(webhook_id)
        assert got is not None
        return got

    async def emit(
        self, tenant_id: str, etype: str, ordering_key: str, data: dict[str, Any]
    ) -> None:
        """Put an event in the outbox for every active endpoint that wants it."""
        events = await self.events_for(tenant_id, etype, ordering_key, data)
        if events:
            await self.store.enqueue_events(events)
            self.wake_dispatcher()

    async def events_for(
        self, tenant_id: str, etype: str, ordering_key: str, data: dict[str, Any]
    ) -> list[OutboxEvent]:
        """One outbox entry per active endpoint that wants ``etype`` (not stored)."""
        assert etype in EVENT_TYPES, etype
        endpoints = [
            ep
            for ep in await self.store.list_webhook_endpoints(tenant_id)
            if ep.disabled_at is None and (not ep.events or etype in ep.events)
        ]
        if not endpoints:
            return []
        now = self.clock()
        event_id = new_id("evt")
        payload = {
            "id": event_id,
            "type": etype,
            "created_at": iso(now),
            "tenant_id": tenant_id,
            "data": data,
        }
        return [
            OutboxEvent(
                id=new_id("ob"),
                event_id=event_id,
                tenant_id=tenant_id,
                endpoint_id=ep.id,
                type=etype,
                ordering_key=ordering_key,
                payload=payload,
                created_at=now,
                next_attempt_at=now,
            )
            for ep in endpoints
        ]


def _tenant_options(tenant: Tenant) -> dict[str, Any]:
    """The tenant's defaults for a new link's options."""
    return {"guest_policy": tenant.guest_policy, "recording": tenant.recording}
