"""The OAuth 2.0 authorization server's rules (RFC 6749 authorization code grant, RFC
7636 PKCE with S256 required, rotating refresh tokens with reuse detection, RFC 7009
revocation). No HTTP here: http_oauth.py and pages_http.py turn requests into calls.

A grant is one member's connection to one client (made at consent; a new consent for
the same client replaces the previous connection). Every code and token points to its
grant; revoking the grant (disconnect, revocation, a code or refresh token used twice)
ends every token of it, since each use of a token checks its grant.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mediaserver.config import AccountsConfig
from mediaserver.state.accounts import AccountStore, Credential, Grant, Member, OAuthClient
from mediaserver.telemetry import get_logger

from ..secrets_ import new_id
from ..service import LinkService
from .crypto import hash_token, new_token, pkce_s256, same, valid_verifier

__all__ = [
    "SCOPES",
    "AccessGrant",
    "AuthorizeRequest",
    "OAuthError",
    "OAuthServer",
    "RedirectError",
    "check_redirect_uri",
]

SCOPES = ("meetings:write", "meetings:read")


class OAuthError(Exception):
    """An RFC 6749 §5.2 error: ``error`` code, description, HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class RedirectError(OAuthError):
    """An authorization request error told to the client at its redirect URI (§4.1.2.1)."""

    def __init__(self, error: str, description: str, redirect_uri: str, state: str | None):
        super().__init__(error, description)
        self.redirect_uri = redirect_uri
        self.state = state


@dataclass(frozen=True)
class AuthorizeRequest:
    client: OAuthClient
    redirect_uri: str
    redirect_given: bool  # then the token request must repeat it (§4.1.3)
    scope: tuple[str, ...]
    state: str | None
    code_challenge: str


@dataclass(frozen=True)
class AccessGrant:
    """What a valid access token stands for."""

    member: Member
    grant: Grant
    scope: tuple[str, ...]


def check_redirect_uri(uri: str) -> str | None:
    """Registration rule: absolute https (http only for loopback), no fragment."""
    parts = urlsplit(uri)
    if parts.fragment or "#" in uri:
        return "must not have a fragment"
    if parts.scheme == "https" and parts.netloc:
        return None
    if parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1", "::1"):
        return None
    if parts.scheme == "http" and parts.hostname and parts.hostname.startswith("127."):
        return None
    return "must be an absolute https URL (http only on loopback)"


class OAuthServer:
    def __init__(self, accounts: AccountStore, links: LinkService, config: AccountsConfig):
        self.accounts = accounts
        self.links = links
        self.config = config
        self.log = get_logger(component="oauth")

    def now(self) -> float:
        return self.links.now()

    # --- clients (CLI) -----------------------------------------------------------
    async def register_client(
        self, name: str, redirect_uris: list[str], *, confidential: bool
    ) -> tuple[OAuthClient, str | None]:
        """The client and its secret (shown once; None for a public client)."""
        if not name.strip():
            raise ValueError("name must not be empty")
        if not redirect_uris:
            raise ValueError("at least one redirect URI")
        for uri in redirect_uris:
            problem = check_redirect_uri(uri)
            if problem:
                raise ValueError(f"redirect URI {uri!r}: {problem}")
        secret = new_token("mscs") if confidential else None
        client = OAuthClient(
            id=new_id("cl"),
            name=name.strip(),
            redirect_uris=tuple(redirect_uris),
            confidential=confidential,
            secret_hash=hash_token(secret) if secret else None,
            created_at=self.now(),
        )
        await self.accounts.add_client(client)
        return client, secret

    async def authenticate_client(self, client_id: str | None, secret: str | None) -> OAuthClient:
        """§2.3: confidential clients by secret (Basic or body), public by id alone."""
        client = await self.accounts.get_client(client_id) if client_id else None
        ok = client is not None and (
            (not client.confidential and secret is None)
            or (
                client.confidential
                and secret is not None
                and same(hash_token(secret), client.secret_hash or "")
            )
        )
        if client is None or not ok:
            raise OAuthError("invalid_client", "client authentication failed", 401)
        return client

    # --- the authorization request (§4.1.1) ---------------------------------------
    async def authorize_request(self, params: Mapping[str, str]) -> AuthorizeRequest:
        """Validate; an OAuthError (not RedirectError) must not be redirected (§4.1.2.1)."""
        client_id = params.get("client_id") or ""
        client = await self.accounts.get_client(client_id) if client_id else None
        if client is None:
            raise OAuthError("invalid_request", "unknown client_id")
        given = params.get("redirect_uri")
        if given is None:
            if len(client.redirect_uris) != 1:
                raise OAuthError("invalid_request", "redirect_uri required")
            redirect_uri = client.redirect_uris[0]
        elif given in client.redirect_uris:  # exact comparison
            redirect_uri = given
        else:
            raise OAuthError("invalid_request", "redirect_uri is not registered for this client")
        state = params.get("state")

        def fail(error: str, description: str) -> RedirectError:
            return RedirectError(error, description, redirect_uri, state)

        if params.get("response_type") != "code":
            raise fail("unsupported_response_type", "response_type must be code")
        challenge = params.get("code_challenge") or ""
        if params.get("code_challenge_method") != "S256" or not valid_verifier(challenge):
            raise fail("invalid_request", "PKCE required: code_challenge with method S256")
        requested = (params.get("scope") or " ".join(SCOPES)).split()
        unknown = [s for s in requested if s not in SCOPES]
        if unknown or not requested:
            raise fail("invalid_scope", f"unknown scope {' '.join(unknown)}")
        scope = tuple(s for s in SCOPES if s in requested)
        return AuthorizeRequest(client, redirect_uri, given is not None, scope, state, challenge)

    async def consent(self, request: AuthorizeRequest, member: Member) -> str:
        """The member allowed it: a new grant (replacing the member's previous one with
        this client) and a single-use, short-lived code for it."""
        now = self.now()
        for old in await self.accounts.list_grants(member.id):
            if old.client_id == request.client.id and old.revoked_at is None:
                await self.revoke_grant(old, "replaced")
        grant = Grant(
            id=new_id("gr"),
            client_id=request.client.id,
            member_id=member.id,
            tenant_id=member.tenant_id,
            scope=request.scope,
            created_at=now,
        )
        await self.accounts.add_grant(grant)
        code = new_token("msc")
        await self.accounts.add_credential(
            Credential(
                hash=hash_token(code),
                kind="code",
                member_id=member.id,
                tenant_id=member.tenant_id,
                created_at=now,
                expires_at=now + self.config.code_ttl_seconds,
                grant_id=grant.id,
                data={
                    "client_id": request.client.id,
                    "redirect_uri": request.redirect_uri if request.redirect_given else None,
                    "code_challenge": request.code_challenge,
                },
            )
        )
        self.log.info("grant made", grant=grant.id, client=request.client.id, member=member.id)
        return code

    # --- the token endpoint (§4.1.3, §6) -------------------------------------------
    async def exchange_code(
        self, client: OAuthClient, code: str, redirect_uri: str | None, verifier: str | None
    ) -> dict[str, Any]:
        if not code:
            raise OAuthError("invalid_request", "code required")
        if not verifier:
            raise OAuthError("invalid_request", "code_verifier required (PKCE)")
        if not valid_verifier(verifier):
            raise OAuthError("invalid_request", "code_verifier: 43-128 unreserved characters")
        cred = await self.accounts.use_credential(hash_token(code), self.now())
        if cred is None or cred.kind != "code" or cred.grant_id is None:
            raise OAuthError("invalid_grant", "unknown authorization code")
        if cred.data.get("client_id") != client.id:
            raise OAuthError("invalid_grant", "the code was issued to another client")
        if cred.used_at is not None:  # §4.1.2: revoke what was issued from it
            await self._revoke_grant_id(cred.grant_id, "code_reused")
            raise OAuthError("invalid_grant", "authorization code already used")
        if cred.expires_at <= self.now():
            raise OAuthError("invalid_grant", "authorization code expired")
        expected_uri = cred.data.get("redirect_uri")
        if expected_uri is not None and redirect_uri != expected_uri:
            raise OAuthError("invalid_grant", "redirect_uri differs from the authorization request")
        if not same(pkce_s256(verifier), str(cred.data.get("code_challenge", ""))):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
        grant = await self.accounts.get_grant(cred.grant_id)
        if grant is None or grant.revoked_at is not None:
            raise OAuthError("invalid_grant", "the connection was revoked")
        return await self._issue(grant, grant.scope)

    async def refresh(
        self, client: OAuthClient, refresh_token: str, scope: str | None
    ) -> dict[str, Any]:
        """Rotate: the refresh token is used up only by a request that gets a new pair
        (a refused one, e.g. a scope too wide, leaves it usable); used a second time, it
        ends the connection."""
        if not refresh_token:
            raise OAuthError("invalid_request", "refresh_token required")
        token_hash = hash_token(refresh_token)
        cred = await self.accounts.get_credential(token_hash)
        if cred is None or cred.kind != "refresh" or cred.grant_id is None:
            raise OAuthError("invalid_grant", "unknown refresh token")
        grant = await self.accounts.get_grant(cred.grant_id)
        if grant is None or grant.client_id != client.id:
            raise OAuthError("invalid_grant", "the refresh token was issued to another client")
        if cred.used_at is None:
            if grant.revoked_at is not None or cred.revoked_at is not None:
                raise OAuthError("invalid_grant", "the connection was revoked")
            if cred.expires_at <= self.now():
                raise OAuthError("invalid_grant", "refresh token expired")
            wanted = tuple(scope.split()) if scope else grant.scope
            if not wanted or any(s not in grant.scope for s in wanted):
                raise OAuthError("invalid_scope", "scope exceeds what the member granted")
            before = await self.accounts.use_credential(token_hash, self.now())
            if before is not None and before.used_at is None:  # this request won the race
                return await self._issue(grant, tuple(s for s in SCOPES if s in wanted))
        # rotated already: someone replays it
        await self.revoke_grant(grant, "refresh_token_reused")
        raise OAuthError("invalid_grant", "refresh token already used; connection revoked")

    async def _issue(self, grant: Grant, scope: tuple[str, ...]) -> dict[str, Any]:
        now = self.now()
        access, refresh = new_token("msa"), new_token("msr")
        for token, kind, ttl in (
            (access, "access", self.config.access_token_ttl_seconds),
            (refresh, "refresh", self.config.refresh_token_ttl_seconds),
        ):
            await self.accounts.add_credential(
                Credential(
                    hash=hash_token(token),
                    kind=kind,
                    member_id=grant.member_id,
                    tenant_id=grant.tenant_id,
                    created_at=now,
                    expires_at=now + ttl,
                    grant_id=grant.id,
                    data={"scope": list(scope)},
                )
            )
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": int(self.config.access_token_ttl_seconds),
            "refresh_token": refresh,
            "scope": " ".join(scope),
        }

    # --- using and ending tokens -----------------------------------------------------
    async def access(self, token: str) -> AccessGrant | None:
        """The live grant behind an access token, or None (unknown, expired, revoked)."""
        cred = await self.accounts.get_credential(hash_token(token))
        if (
            cred is None
            or cred.kind != "access"
            or cred.grant_id is None
            or cred.revoked_at is not None
            or cred.expires_at <= self.now()
        ):
            return None
        grant = await self.accounts.get_grant(cred.grant_id)
        member = await self.accounts.get_member(cred.member_id)
        if grant is None or grant.revoked_at is not None or member is None:
            return None
        if member.disabled_at is not None:
            return None
        return AccessGrant(member, grant, tuple(cred.data.get("scope") or ()))

    async def revoke_token(self, client: OAuthClient, token: str) -> None:
        """RFC 7009: revoking an access or refresh token ends its grant (the whole
        connection). Unknown tokens and other clients' tokens: nothing, still 200."""
        cred = await self.accounts.get_credential(hash_token(token))
        if cred is None or cred.kind not in ("access", "refresh") or cred.grant_id is None:
            return
        grant = await self.accounts.get_grant(cred.grant_id)
        if grant is not None and grant.client_id == client.id:
            await self.revoke_grant(grant, "revoked_by_client")

    async def _revoke_grant_id(self, grant_id: str, reason: str) -> None:
        grant = await self.accounts.get_grant(grant_id)
        if grant is not None:
            await self.revoke_grant(grant, reason)

    async def revoke_grant(self, grant: Grant, reason: str) -> bool:
        """End a connection; the tenant gets ``connection.revoked`` (once)."""
        if not await self.accounts.revoke_grant(grant.id, self.now(), reason):
            return False
        client = await self.accounts.get_client(grant.client_id)
        self.log.info("grant revoked", grant=grant.id, reason=reason)
        revoked = dataclasses.replace(grant, revoked_at=self.now(), revoked_reason=reason)
        await self.links.emit(
            grant.tenant_id,
            "connection.revoked",
            grant.id,
            {"connection": self.connection_json(revoked, client)},
        )
        return True

    @staticmethod
    def connection_json(grant: Grant, client: OAuthClient | None) -> dict[str, Any]:
        from ..views import iso

        return {
            "id": grant.id,
            "client_id": grant.client_id,
            "client_name": client.name if client else None,
            "member_id": grant.member_id,
            "scope": " ".join(grant.scope),
            "connected_at": iso(grant.created_at),
            "revoked_at": iso(grant.revoked_at),
            "reason": grant.revoked_reason,
        }

    def metadata(self, issuer: str) -> dict[str, Any]:
        """RFC 8414 authorization server metadata."""
        auth_methods = ["client_secret_basic", "client_secret_post", "none"]
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/oauth/authorize",
            "token_endpoint": f"{issuer}/oauth/token",
            "revocation_endpoint": f"{issuer}/oauth/revoke",
            "scopes_supported": list(SCOPES),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint_auth_methods_supported": auth_methods,
            "service_documentation": f"{issuer}/v1/openapi.json",
        }
