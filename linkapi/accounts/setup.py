"""Wiring member accounts into the application (called by ``setup_linkapi``)."""

from __future__ import annotations

from aiohttp import web

from mediaserver.state.accounts import account_store

from ..service import LinkService
from .api import add_api_routes
from .bearer import MEMBER_AUTH, member_auth
from .joining import signed_in_join_middleware
from .members import Members
from .oauth import OAuthServer
from .oauth_http import add_oauth_routes
from .pages_http import add_page_routes
from .web_common import MEMBERS, OAUTH, SECURE

__all__ = ["setup_accounts"]


def setup_accounts(app: web.Application, v1: web.Application, service: LinkService) -> None:
    """Pages and /oauth/* on ``app``; /v1/users, /v1/me and member tokens on ``v1``."""
    cfg = service.config.accounts
    accounts = account_store(service.store)
    members = Members(accounts, service, cfg)
    oauth = OAuthServer(accounts, service, cfg)
    app[MEMBERS] = members
    app[OAUTH] = oauth
    app[SECURE] = service.public_url.startswith("https:")
    v1[MEMBER_AUTH] = member_auth(oauth)
    add_api_routes(v1, members, oauth)
    add_page_routes(app.router)
    add_oauth_routes(app.router)
    app.middlewares.append(signed_in_join_middleware)
