"""Typed aiohttp application keys shared by the app's modules."""

from __future__ import annotations

from aiohttp import web

from .config import Config
from .sfu.room import RoomManager
from .telemetry import Metrics

__all__ = ["CONFIG", "METRICS", "ROOMS", "SESSIONS"]

CONFIG = web.AppKey("config", Config)
METRICS = web.AppKey("metrics", Metrics)
ROOMS = web.AppKey("rooms", RoomManager)
SESSIONS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("sessions")
