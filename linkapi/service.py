"""Link API business logic over the durable store (no HTTP here)."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from mediaserver.config import Config
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

from .inputs import parse_rfc3339
from .invitation import build_invitation
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

__all__ = ["JoinGrant", "JoinRefusal", "LinkService", "iso", "parse_time"]

DEFAULT_OPTIONS: dict[str, Any] = {
    "waiting_room": True,
    "guest_policy": "lobby",
    "max_participants": 0,  # 0: the server's rooms.max_participants
    "max_guests": 0,  # 0: no separate cap on guests
    "join_before_minutes": 15,
    "grace_after_minutes": 60,
}


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


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


class LinkService:
    def __init__(self, store: Store, config: Config, clock: Callable[[], float] = time.time):
        self.store = store
        self.config = config
        self.clock = clock
        self.public_url = config.server.effective_public_url
        self._token_secret = b""
        self.on_revoked: Callable[[Link], Any] | None = None
        self.wake_dispatcher: Callable[[], None] = lambda: None

    async def start(self) -> None:
        self._token_secret = await load_token_secret(self.config.linkapi.token_secret, self.store)

    @property
    def token_secret(self) -> bytes:
        """The server's signing secret (join tokens; participant keys, with their own
        purpose prefix). Set by start()."""
        return self._token_secret

    # --- tenants and keys (CLI) ------------------------------------------------------

    async def create_tenant(self, name: str, guest_policy: str = "lobby") -> tuple[Tenant, str]:
        if guest_policy not in ("allow", "lobby", "deny"):
            raise ValueError(f"guest policy must be allow, lobby or deny, not {guest_policy!r}")
        tenant = Tenant(
            id=new_id("tn"), name=name, created_at=self.clock(), guest_policy=guest_policy
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

    def _window(self, event: dict[str, Any], options: dict[str, Any]) -> tuple[float, float]:
        start = parse_time(event["start"], "event.start")
        end = parse_time(event["end"], "event.end")
        if end <= start:
            raise _invalid("event.end", "must be after event.start")
        if end - start > 31 * 86400:
            raise _invalid("event.end", "an event may last at most 31 days")
        return (
            start - 60 * int(options["join_before_minutes"]),
            end + 60 * int(options["grace_after_minutes"]),
        )

    @staticmethod
    def _options(
        given: dict[str, Any] | None, base: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return {**DEFAULT_OPTIONS, **(base or {}), **(given or {})}

    async def create_event_link(
        self, tenant: Tenant, body: dict[str, Any], idempotency_key: str | None
    ) -> tuple[Link, bool]:
        event = dict(body["event"])
        options = self._options(body.get("options"), {"guest_policy": tenant.guest_policy})
        conferencing = body.get("conferencing") or {}
        profile = conferencing.get("profile", "default")
        if profile == "explicit" and not conferencing.get("join_url"):
            raise _invalid("conferencing.join_url", "required for the explicit profile")
        if profile == "default" and ("join_url" in conferencing):
            raise _invalid("conferencing.join_url", "only for the explicit profile")
        valid_from, valid_until = self._window(event, options)
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
            calendar_id=event.get("calendar_id"),
            event_id=event["id"],
            recurrence_id=event.get("recurrence_id"),
            event=event,
            options=options,
            valid_from=valid_from,
            valid_until=valid_until,
            created_at=now,
            updated_at=now,
        )
        natural = "event\x00{}\x00{}\x00{}".format(
            event.get("calendar_id") or "", event["id"], event.get("recurrence_id") or ""
        )
        events = await self.events_for(
            tenant.id, "link.created", link.id, {"link": self.link_json(link)}
        )
        stored, created = await self.store.create_link(
            link, natural, idempotency_key, events=events
        )
        same_event = (stored.calendar_id, stored.event_id, stored.recurrence_id) == (
            link.calendar_id,
            link.event_id,
            link.recurrence_id,
        )
        if not created and not same_event:
            raise ApiProblem(
                409,
                "idempotency-key-reused",
                "Idempotency-Key reused",
                "this Idempotency-Key was used for another event",
            )
        if created and events:
            self.wake_dispatcher()
        return stored, created

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
                valid_from, valid_until = self._window(event, options)
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
            options=self._options(body.get("options"), {"guest_policy": tenant.guest_policy}),
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
        if link.valid_from is not None and now < link.valid_from:
            raise JoinRefusal(
                "link_not_open",
                f"the meeting opens at {iso(link.valid_from)}",
                opens_at=iso(link.valid_from),
                closes_at=iso(link.valid_until),
            )
        if link.valid_until is not None and now > link.valid_until:
            raise JoinRefusal(
                "link_ended",
                f"the meeting ended at {iso(link.valid_until)}",
                opens_at=iso(link.valid_from),
                closes_at=iso(link.valid_until),
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
        from .webhooks import check_webhook_url, check_webhook_url_resolves

        allow_private = self.config.linkapi.allow_private_webhook_urls
        problem = check_webhook_url(body["url"], allow_private)
        if problem is None and not allow_private:
            problem = await check_webhook_url_resolves(body["url"])
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

    # --- JSON views ------------------------------------------------------------------

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
            "invitation": build_invitation(
                join_url=join_url,
                summary=link.event.get("summary"),
                provider=link.provider_description or "mediaserver video meeting",
            ),
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
