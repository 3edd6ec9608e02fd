"""The core of ``LinkService``: what all its parts share (the store, the
configuration, the clock, the token secret, the hooks the app sets) and the problems
they raise for a missing record or a bad time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mediaserver.config import Config
from mediaserver.state import Store
from mediaserver.state.models import Link

from .inputs import parse_rfc3339
from .problems import ApiProblem, invalid
from .secrets_ import load_token_secret
from .views import JsonViews

__all__ = ["ServiceCore", "not_found", "parse_time"]


def parse_time(value: str, field: str) -> float:
    """RFC 3339 date-time with an offset (or Z), years MIN_YEAR-MAX_YEAR → Unix seconds."""
    try:
        return parse_rfc3339(value).timestamp()
    except ValueError as exc:
        raise invalid(field, str(exc)) from None


def not_found(what: str = "link") -> ApiProblem:
    return ApiProblem(404, "not-found", "Not found", f"no such {what}")


class ServiceCore(JsonViews):
    """The state of ``LinkService`` that its parts (``service_*.py``) build on."""

    def __init__(self, store: Store, config: Config, clock: Callable[[], float] = time.time):
        self.store = store
        self.config = config
        self.clock = clock
        self.public_url = config.server.effective_public_url
        self._token_secret = b""
        self.on_revoked: Callable[[Link], Any] | None = None
        #: Called with (link, invite id) after a guest invite's revocation is stored.
        self.on_invite_revoked: Callable[[Link, str], Any] | None = None
        self.wake_dispatcher: Callable[[], None] = lambda: None

    def now(self) -> float:
        return self.clock()

    async def start(self) -> None:
        self._token_secret = await load_token_secret(self.config.linkapi.token_secret, self.store)

    @property
    def token_secret(self) -> bytes:
        """The server's signing secret (join tokens; participant keys, with their own
        purpose prefix). Set by start()."""
        return self._token_secret
