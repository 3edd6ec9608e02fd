"""Short-lived TURN credentials (coturn's ``use-auth-secret`` / TURN REST API scheme).

username = ``<unix expiry>:<participant id>``, password = base64(HMAC-SHA1(secret,
username)). coturn, configured with the same ``static-auth-secret``, recomputes the
password and refuses the username once its expiry has passed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["turn_credentials", "turn_ice_server"]


def turn_credentials(
    secret: str, participant_id: str, ttl_seconds: int, now: float | None = None
) -> tuple[str, str]:
    """(username, password) valid for ``ttl_seconds`` from ``now``."""
    expiry = int(time.time() if now is None else now) + ttl_seconds
    username = f"{expiry}:{participant_id}"
    digest = hmac.new(secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def turn_ice_server(
    urls: Sequence[str], secret: str, participant_id: str, ttl_seconds: int
) -> dict[str, Any]:
    """An IceServer entry for ``joined`` carrying fresh credentials for one participant."""
    username, credential = turn_credentials(secret, participant_id, ttl_seconds)
    return {"urls": list(urls), "username": username, "credential": credential}
