"""Member access tokens on the link API (/v1): which operations they may call, with
which scope (RFC 6750 errors). Tenant API keys are unchanged (linkapi/routes.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from mediaserver.state import Tenant

from ..problems import ApiProblem
from .oauth import AccessGrant, OAuthServer

__all__ = ["MEMBER", "MEMBER_AUTH", "MemberAuth", "is_member_token", "member_auth"]

TOKEN_PREFIX = "msa_"
#: The operations a member token may call (route resource, method) -> scope needed.
#: Everything else under /v1 is for tenant keys (403).
SCOPE_OF: dict[tuple[str, str], str] = {
    ("/v1/links", "POST"): "meetings:write",
    ("/v1/links/{link_id}", "GET"): "meetings:read",
    ("/v1/me", "GET"): "",  # any scope
}


class MemberAuth:
    """A member's valid access token. ``refusal``: the 403 of an operation it may not
    call, raised by the /v1 authentication after the rate limit (so that it carries
    the RateLimit-* headers like every authenticated answer)."""

    def __init__(
        self, access: AccessGrant, tenant: Tenant, refusal: ApiProblem | None = None
    ) -> None:
        self.access = access
        self.tenant = tenant
        self.refusal = refusal

    @property
    def member_id(self) -> str:
        return self.access.member.id


MEMBER = web.RequestKey("accounts_member", MemberAuth)
MEMBER_AUTH: web.AppKey[Callable[[web.Request], Awaitable[MemberAuth | None]]] = web.AppKey(
    "accounts_member_auth"
)


def is_member_token(authorization: str | None) -> bool:
    return bool(authorization) and str(authorization)[7:].strip().startswith(TOKEN_PREFIX)


def _bearer_problem(status: int, error: str, detail: str, scope: str = "") -> ApiProblem:
    challenge = f'Bearer realm="mediaserver", error="{error}"'
    if scope:
        challenge += f', scope="{scope}"'
    kind = "unauthorized" if status == 401 else "insufficient-scope"
    title = "Unauthorized" if status == 401 else "Forbidden"
    return ApiProblem(status, kind, title, detail, headers={"WWW-Authenticate": challenge})


def member_auth(oauth: OAuthServer) -> Callable[[web.Request], Awaitable[MemberAuth | None]]:
    """The hook of the /v1 authentication: None when the request has no member token
    (a tenant key then); a MemberAuth (also in ``request[MEMBER]``; with a 403
    ``refusal`` for an operation it may not call); or a 401."""

    async def check(request: web.Request) -> MemberAuth | None:
        header = request.headers.get("Authorization")
        if not header or not header.startswith("Bearer ") or not is_member_token(header):
            return None
        access = await oauth.access(header[7:].strip())
        if access is None:
            raise _bearer_problem(401, "invalid_token", "access token unknown, expired or revoked")
        tenant = await oauth.links.store.get_tenant(access.member.tenant_id)
        if tenant is None:
            raise _bearer_problem(401, "invalid_token", "unknown tenant")
        info = request.match_info.route.resource
        resource = info.canonical if info is not None else request.path
        if not resource.startswith("/v1/"):
            resource = "/v1" + resource
        needed = SCOPE_OF.get((resource, request.method))
        if needed is None:
            return MemberAuth(
                access,
                tenant,
                _bearer_problem(403, "insufficient_scope", "this operation needs a tenant API key"),
            )
        if needed and needed not in access.scope:
            return MemberAuth(
                access,
                tenant,
                _bearer_problem(
                    403, "insufficient_scope", f"this operation needs the scope {needed}", needed
                ),
            )
        auth = MemberAuth(access, tenant)
        request[MEMBER] = auth
        return auth

    return check
