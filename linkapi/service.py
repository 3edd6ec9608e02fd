"""Link API business logic over the durable store (no HTTP here).

``LinkService`` is put together from its parts, each a module of its own:
``service_core`` (the shared state), ``service_tenants`` (tenants and API keys),
``service_events`` (webhook endpoints and their events), ``service_links`` (links,
personal rooms, guest invites) and ``service_joining`` (join and room tokens, resolving
a join); ``views`` (the JSON views) is its base.
"""

from __future__ import annotations

from .service_core import parse_time
from .service_joining import JoinGrant, Joining, JoinRefusal
from .service_tenants import TenantsAndKeys
from .views import iso

__all__ = ["JoinGrant", "JoinRefusal", "LinkService", "iso", "parse_time"]


class LinkService(TenantsAndKeys, Joining):
    """The link API's logic: see the module docstring for its parts."""
