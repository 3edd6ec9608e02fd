"""The calendar-facing link API, mounted under /v1 (see docs/linkapi.md)."""

from .routes import setup_linkapi

__all__ = ["setup_linkapi"]
