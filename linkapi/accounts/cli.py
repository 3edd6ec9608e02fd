"""CLI commands: ``mediaserver user create|list`` and ``mediaserver oauth-client
create|list`` (straight on the configured store; the server may run)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

__all__ = ["add_account_commands"]


def add_account_commands(sub: Any, config_opt: argparse.ArgumentParser) -> None:
    user = sub.add_parser("user", help="manage members (people with an account)")
    usub = user.add_subparsers(dest="user_command", required=True)
    create = usub.add_parser(
        "create", parents=[config_opt], help="create a member; prints a one-time set-password link"
    )
    create.add_argument("tenant_id")
    create.add_argument("email")
    create.add_argument("--name", required=True, help="the member's display name")
    listing = usub.add_parser("list", parents=[config_opt], help="a tenant's members")
    listing.add_argument("tenant_id")
    user.set_defaults(func=cmd_user)
    client = sub.add_parser("oauth-client", help="register calendar products (OAuth clients)")
    csub = client.add_subparsers(dest="client_command", required=True)
    register = csub.add_parser(
        "create", parents=[config_opt], help="register a client; prints its id (and secret)"
    )
    register.add_argument("name", help='shown on the consent page ("<name> wants to ...")')
    register.add_argument(
        "--redirect-uri",
        action="append",
        required=True,
        help="an exact redirect URI (repeat for several)",
    )
    register.add_argument(
        "--public",
        action="store_true",
        help="a public client (no secret; e.g. a native or single-page app)",
    )
    csub.add_parser("list", parents=[config_opt], help="registered clients")
    client.set_defaults(func=cmd_oauth_client)


def _run(args: argparse.Namespace, body: Any) -> int:
    from mediaserver.cli import _load, _open_store
    from mediaserver.config import Config
    from mediaserver.state.accounts import account_store

    from ..service import LinkService
    from .members import Members
    from .oauth import OAuthServer

    config = _load(args.config)
    assert isinstance(config, Config)

    async def run() -> int:
        async with _open_store(config) as store:
            service = LinkService(store, config)
            accounts = account_store(store)
            members = Members(accounts, service, config.accounts)
            oauth = OAuthServer(accounts, service, config.accounts)
            result: int = await body(service, members, oauth)
            return result

    return asyncio.run(run())


def cmd_user(args: argparse.Namespace) -> int:
    from .members import MemberError

    async def body(service: Any, members: Any, oauth: Any) -> int:
        tenant = await service.store.get_tenant(args.tenant_id)
        if tenant is None:
            print(f"no tenant {args.tenant_id}", file=sys.stderr)
            return 1
        if args.user_command == "create":
            try:
                member, token = await members.create(tenant, args.email, args.name)
            except MemberError as exc:
                print(exc.message, file=sys.stderr)
                return 1
            print(f"member {member.id} <{member.email}> created")
            print("one-time link to set the password (send it to them):")
            print(f"{service.public_url}/password/{token}")
            return 0
        for m in await members.accounts.list_members(tenant.id):
            state = "password set" if m.password_hash else "no password yet"
            print(f"{m.id}\t{m.email}\t{m.name}\t{state}")
        return 0

    return _run(args, body)


def cmd_oauth_client(args: argparse.Namespace) -> int:
    async def body(service: Any, members: Any, oauth: Any) -> int:
        if args.client_command == "create":
            try:
                client, secret = await oauth.register_client(
                    args.name, list(args.redirect_uri), confidential=not args.public
                )
            except ValueError as exc:
                print(str(exc), file=sys.stderr)
                return 1
            kind = "confidential" if client.confidential else "public"
            print(f"{kind} client {client.name!r} registered")
            print(f"client_id: {client.id}")
            if secret:
                print("client_secret (shown once; store it now):")
                print(secret)
            return 0
        for c in await oauth.accounts.list_clients():
            kind = "confidential" if c.confidential else "public"
            print(f"{c.id}\t{c.name}\t{kind}\t{' '.join(c.redirect_uris)}")
        return 0

    return _run(args, body)
