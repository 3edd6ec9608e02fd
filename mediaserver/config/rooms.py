"""Room limits, the lobby and last-N ([rooms])."""

import dataclasses
from typing import ClassVar

from .base import _Validated


@dataclasses.dataclass(frozen=True)
class RoomsConfig(_Validated):
    """Room limits."""

    _key_prefix: ClassVar[str] = "rooms"

    max_participants: int = 16
    empty_timeout_seconds: float = 30.0
    max_publications_per_participant: int = 4
    lobby_timeout_seconds: float = 300.0
    #: Rooms joined by id (``join {room, token}``), each join with a signed room token.
    #: Off: only meeting links can be joined.
    adhoc: bool = False
    lobby_max_waiting: int = 50
    lobby_max_per_address: int = 10
    #: Last-N: camera video only from the N most recent speakers, plus pins and screen
    #: sharers (0: from everyone)
    last_n: int = 0

    def _validate(self) -> None:
        self._range("last_n", self.last_n, 0, 1000, "between 0 (off) and 1000")
        self._range(
            "lobby_timeout_seconds", self.lobby_timeout_seconds, 1, 86400, "between 1 and 86400"
        )
        self._range("lobby_max_waiting", self.lobby_max_waiting, 1, 1000, "between 1 and 1000")
        self._range(
            "lobby_max_per_address", self.lobby_max_per_address, 0, 1000, "between 0 and 1000"
        )
        self._range("max_participants", self.max_participants, 1, 1000, "between 1 and 1000")
        self._range("empty_timeout_seconds", self.empty_timeout_seconds, 0, None, ">= 0")
        self._range(
            "max_publications_per_participant",
            self.max_publications_per_participant,
            1,
            16,
            "between 1 and 16",
        )
