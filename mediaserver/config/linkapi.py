"""The calendar-facing link API under /v1 ([linkapi])."""

import dataclasses
from typing import ClassVar

from .base import _error, _Validated


@dataclasses.dataclass(frozen=True)
class LinkApiConfig(_Validated):
    """The calendar-facing link API under /v1."""

    _key_prefix: ClassVar[str] = "linkapi"

    enabled: bool = True
    token_secret: str = dataclasses.field(default="", metadata={"secret": True})
    join_token_ttl_seconds: float = 600.0
    rate_limit_per_minute: int = 600
    rate_limit_burst: int = 0  # requests at once; 0: rate_limit_per_minute
    max_body_bytes: int = 65536
    webhook_retry_base_seconds: float = 1.0
    webhook_retry_max_seconds: float = 300.0
    webhook_timeout_seconds: float = 10.0
    allow_private_webhook_urls: bool = False

    def _validate(self) -> None:
        if self.token_secret and len(self.token_secret) < 32:
            raise _error(self._key("token_secret"), "must be at least 32 characters")
        self._range(
            "join_token_ttl_seconds", self.join_token_ttl_seconds, 10, 86400, "between 10 and 86400"
        )
        self._range("rate_limit_per_minute", self.rate_limit_per_minute, 1, 1_000_000, ">= 1")
        self._range("rate_limit_burst", self.rate_limit_burst, 0, 1_000_000, "0..1000000")
        self._range("max_body_bytes", self.max_body_bytes, 1024, 10 << 20, "1024..10 MiB")
        self._range(
            "webhook_retry_base_seconds", self.webhook_retry_base_seconds, 0.01, 3600, "> 0"
        )
        self._range("webhook_retry_max_seconds", self.webhook_retry_max_seconds, 0.01, 86400, "> 0")
        self._range("webhook_timeout_seconds", self.webhook_timeout_seconds, 0.1, 300, "0.1..300")
