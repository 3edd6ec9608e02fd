"""Typed aiohttp application keys shared by the app's modules."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .config import Config
from .limits import AddressLimit
from .sfu.rooms import RoomManager
from .state.store import Store
from .telemetry import Metrics

__all__ = [
    "ADDRESSES",
    "CONFIG",
    "LINKS",
    "METRICS",
    "RELAY",
    "ROOMS",
    "ROOM_TOKEN_SECRET",
    "SESSIONS",
    "STORE",
]

CONFIG = web.AppKey("config", Config)
METRICS = web.AppKey("metrics", Metrics)
ROOMS = web.AppKey("rooms", RoomManager)
# Open signalling connections per client address (signalling.max_connections_per_address).
ADDRESSES = web.AppKey("addresses", AddressLimit)
SESSIONS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("sessions")
STORE: web.AppKey[Store] = web.AppKey("store")
# The link service (linkapi.service.LinkService) when the link API is enabled.
LINKS: web.AppKey[object] = web.AppKey("links")
# The cluster relay (mediaserver.cluster.relay.Relay) when state.backend = "redis".
RELAY: web.AppKey[Any] = web.AppKey("relay")
# The key that signs room tokens; present only when rooms.adhoc is true.
ROOM_TOKEN_SECRET: web.AppKey[bytes] = web.AppKey("room_token_secret")
