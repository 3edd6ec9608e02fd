"""Members: creation, one-time set-password links, sign-in with throttling, server-side
sessions (revocable), password change, the member's personal room. No HTTP here."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import secrets
from dataclasses import dataclass

from mediaserver.config import AccountsConfig
from mediaserver.state import ConflictError, Link, Tenant
from mediaserver.state.accounts import AccountStore, Credential, Member
from mediaserver.telemetry import get_logger

from ..secrets_ import new_id
from ..service import LinkService
from .crypto import hash_password, hash_token, new_token, same, verify_password

__all__ = ["MemberError", "Members", "Session", "normalise_email"]


class MemberError(Exception):
    """A refusal with a reason code (``throttled``, ``bad_credentials``, ...) and text."""

    def __init__(self, code: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after  # seconds (``throttled``: at most this long)


@dataclass(frozen=True)
class Session:
    member: Member
    tenant: Tenant
    credential: Credential

    @property
    def csrf(self) -> str:
        return str(self.credential.data["csrf"])


def normalise_email(email: str) -> str:
    return email.strip().lower()


class Members:
    def __init__(self, accounts: AccountStore, links: LinkService, config: AccountsConfig):
        self.accounts = accounts
        self.links = links
        self.config = config
        self.log = get_logger(component="accounts")

    def now(self) -> float:
        return self.links.now()

    # --- creation and passwords --------------------------------------------------
    async def create(self, tenant: Tenant, email: str, name: str) -> tuple[Member, str]:
        """A member without a password, and the one-time set-password link's token."""
        email = normalise_email(email)
        if "@" not in email or len(email) > 254 or any(c.isspace() for c in email):
            raise MemberError("invalid_email", "email: not an email address")
        name = name.strip()
        if not 1 <= len(name) <= 200 or any(ord(c) < 32 for c in name):
            raise MemberError("invalid_name", "name: 1 to 200 characters, no control characters")
        member = Member(
            id=new_id("usr"), tenant_id=tenant.id, email=email, name=name, created_at=self.now()
        )
        try:
            await self.accounts.add_member(member)
        except ConflictError:
            raise MemberError("email_taken", "email: an account with this email exists") from None
        token = await self.password_link(member)
        self.log.info("member created", member=member.id, tenant=tenant.id)
        return member, token

    async def password_link(self, member: Member) -> str:
        token = new_token("msp")
        now = self.now()
        await self.accounts.add_credential(
            Credential(
                hash=hash_token(token),
                kind="password_link",
                member_id=member.id,
                tenant_id=member.tenant_id,
                created_at=now,
                expires_at=now + self.config.password_link_ttl_seconds,
            )
        )
        return token

    async def password_link_member(self, token: str) -> Member:
        """The member of a valid, unused set-password link (not consumed)."""
        cred = await self.accounts.get_credential(hash_token(token))
        if (
            cred is None
            or cred.kind != "password_link"
            or cred.used_at is not None
            or cred.revoked_at is not None
            or cred.expires_at <= self.now()
        ):
            raise MemberError("invalid_link", "This link is not valid (used or expired).")
        member = await self.accounts.get_member(cred.member_id)
        if member is None or member.disabled_at is not None:
            raise MemberError("invalid_link", "This link is not valid.")
        return member

    def check_password(self, password: str, confirm: str) -> None:
        if not same(password, confirm):
            raise MemberError("mismatch", "The two passwords differ.")
        if len(password) < self.config.min_password_length or len(password) > 1024:
            raise MemberError(
                "weak_password",
                f"Use at least {self.config.min_password_length} characters.",
            )

    async def set_password_with_link(self, token: str, password: str, confirm: str) -> Member:
        member = await self.password_link_member(token)
        self.check_password(password, confirm)
        before = await self.accounts.use_credential(hash_token(token), self.now())
        if before is None or before.used_at is not None:  # used concurrently
            raise MemberError("invalid_link", "This link is not valid (used or expired).")
        return await self._store_password(member, password)

    async def _store_password(self, member: Member, password: str) -> Member:
        password_hash = await asyncio.to_thread(hash_password, password)
        member = dataclasses.replace(
            member, password_hash=password_hash, password_set_at=self.now()
        )
        await self.accounts.update_member(member)
        # every other browser is signed out
        await self.accounts.revoke_member_credentials(member.id, "session", self.now())
        self.log.info("password set", member=member.id)
        return member

    async def change_password(
        self, session: Session, current: str, password: str, confirm: str
    ) -> Member:
        member = session.member
        if not await asyncio.to_thread(verify_password, current, member.password_hash):
            raise MemberError("bad_credentials", "The current password is wrong.")
        self.check_password(password, confirm)
        return await self._store_password(member, password)

    # --- sign-in and sessions ----------------------------------------------------
    async def sign_in(self, email: str, password: str, address: str) -> tuple[Member, str]:
        """(member, session token), or MemberError ``throttled`` / ``bad_credentials``."""
        cfg = self.config
        email = normalise_email(email)[:254]
        now = self.now()
        keys = [
            (f"account:{email}", cfg.signin_failures_per_account),
            (f"address:{address}", cfg.signin_failures_per_address),
        ]
        for key, limit in keys:
            if await self.accounts.count_failures(key, now, cfg.signin_window_seconds) >= limit:
                self.log.warning("sign-in throttled", by=key.split(":")[0])
                raise MemberError(
                    "throttled",
                    "Too many failed sign-ins. Try again in a few minutes.",
                    # the failures are counted over a sliding window: by then all have left it
                    retry_after=math.ceil(cfg.signin_window_seconds),
                )
        member = await self.accounts.get_member_by_email(email)
        usable = member is not None and member.disabled_at is None
        ok = await asyncio.to_thread(
            verify_password, password, member.password_hash if member and usable else None
        )
        if member is None or not usable or not ok:
            for key, _ in keys:
                await self.accounts.note_failure(key, now, cfg.signin_window_seconds)
            raise MemberError("bad_credentials", "Wrong email or password.")
        token = new_token("mss")
        await self.accounts.add_credential(
            Credential(
                hash=hash_token(token),
                kind="session",
                member_id=member.id,
                tenant_id=member.tenant_id,
                created_at=now,
                expires_at=now + cfg.session_ttl_seconds,
                data={"csrf": secrets.token_urlsafe(24)},
            )
        )
        self.log.info("signed in", member=member.id)
        return member, token

    async def session(self, token: str | None) -> Session | None:
        """The live session of a cookie value, or None."""
        if not token or len(token) > 100:
            return None
        cred = await self.accounts.get_credential(hash_token(token))
        if (
            cred is None
            or cred.kind != "session"
            or cred.revoked_at is not None
            or cred.expires_at <= self.now()
        ):
            return None
        member = await self.accounts.get_member(cred.member_id)
        tenant = await self.links.store.get_tenant(cred.tenant_id)
        if member is None or member.disabled_at is not None or tenant is None:
            return None
        return Session(member, tenant, cred)

    async def sign_out(self, session: Session) -> None:
        await self.accounts.revoke_credential(session.credential.hash, self.now())
        self.log.info("signed out", member=session.member.id)

    # --- the personal room -------------------------------------------------------
    async def personal_room(self, member: Member, tenant: Tenant) -> Link:
        """The member's personal room (``user_id`` = the member's id), made on first use."""
        found = await self.links.store.find_links(tenant.id, user_id=member.id, limit=1)
        if found and found[0].kind == "personal":
            return found[0]
        link, _ = await self.links.personal_room(
            tenant, member.id, {"display_name": f"{member.name}'s room"}
        )
        return link
