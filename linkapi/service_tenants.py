"""Tenants and their API keys (a part of ``LinkService``): creating them (the CLI)
and authenticating a request's API key."""

from __future__ import annotations

from mediaserver.config import RECORDING_POLICIES
from mediaserver.state.models import ApiKey, Tenant

from .problems import ApiProblem
from .secrets_ import hash_secret, new_api_key, new_id, parse_api_key, verify_secret
from .service_core import ServiceCore

__all__ = ["TenantsAndKeys"]


class TenantsAndKeys(ServiceCore):
    """Tenants and API keys (created by the CLI), and authenticating a request."""

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
        _check_rate_limits(rate_limit_per_minute, rate_limit_burst)
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

    async def set_rate_limit(
        self, tenant_id: str, rate_limit_per_minute: int | None, rate_limit_burst: int | None
    ) -> Tenant:
        """A tenant's own rate limit and burst (None: the configured ones), in effect
        from its next request on every node (the tenant is read with every request's
        key). KeyError if there is no such tenant."""
        _check_rate_limits(rate_limit_per_minute, rate_limit_burst)
        tenant = await self.store.update_tenant(
            tenant_id,
            {"rate_limit_per_minute": rate_limit_per_minute, "rate_limit_burst": rate_limit_burst},
        )
        if tenant is None:
            raise KeyError(tenant_id)
        return tenant

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


def _check_rate_limits(*values: int | None) -> None:
    for value in values:
        if value is not None and not 1 <= value <= 1_000_000:
            raise ValueError("rate limits must be between 1 and 1000000")
