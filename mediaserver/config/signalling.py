"""WebSocket signalling limits ([signalling])."""

import dataclasses
from typing import ClassVar

from .base import _error, _Validated


@dataclasses.dataclass(frozen=True)
class SignallingConfig(_Validated):
    """WebSocket signalling limits."""

    _key_prefix: ClassVar[str] = "signalling"

    max_message_bytes: int = 65536
    join_timeout_seconds: float = 10.0
    # Abuse limits (docs/protocol.md §1 and §6, docs/operations.md §2)
    messages_per_second: float = 20.0
    message_burst: int = 50
    rate_limited_close_after: int = 50
    max_connections_per_address: int = 32
    max_sdp_mlines: int = 32
    max_sdp_attributes_per_mline: int = 256
    max_concurrent_sdp: int = 4
    max_queued_sdp: int = 16
    publish_burst: int = 5
    publishes_per_minute: float = 12.0
    join_burst_per_address: int = 30
    joins_per_minute_per_address: float = 60.0

    def _validate(self) -> None:
        self._range(
            "max_message_bytes", self.max_message_bytes, 1024, 1048576, "between 1024 and 1048576"
        )
        self._range("messages_per_second", self.messages_per_second, 0.1, 10000, "0.1..10000")
        self._range("message_burst", self.message_burst, 1, 100000, "1..100000")
        self._range("rate_limited_close_after", self.rate_limited_close_after, 1, 100000, ">= 1")
        self._range(
            "max_connections_per_address", self.max_connections_per_address, 0, 100000, ">= 0"
        )
        self._range("max_sdp_mlines", self.max_sdp_mlines, 1, 1024, "between 1 and 1024")
        self._range(
            "max_sdp_attributes_per_mline", self.max_sdp_attributes_per_mline, 8, 4096, "8..4096"
        )
        self._range("max_concurrent_sdp", self.max_concurrent_sdp, 1, 1024, "between 1 and 1024")
        self._range("max_queued_sdp", self.max_queued_sdp, 0, 100000, ">= 0")
        self._range("publish_burst", self.publish_burst, 1, 1000, "between 1 and 1000")
        self._range("publishes_per_minute", self.publishes_per_minute, 0.1, 6000, "0.1..6000")
        self._range(
            "join_burst_per_address", self.join_burst_per_address, 0, 100000, ">= 0 (0: off)"
        )
        self._range(
            "joins_per_minute_per_address",
            self.joins_per_minute_per_address,
            0.1,
            600000,
            "0.1..600000",
        )
        if not self.join_timeout_seconds > 0:
            raise _error(
                self._key("join_timeout_seconds"),
                f"must be greater than 0, got {self.join_timeout_seconds!r}",
            )
