"""Last-N: in big rooms each subscriber gets camera video only from the N participants
who spoke most recently (audio and screen shares always). Pure: no IO.

The order starts as join order (so the first N to join are seen before anyone speaks),
and each new active speaker moves to the front.
"""

from __future__ import annotations

__all__ = ["SpeakerOrder"]


class SpeakerOrder:
    """Participants, most recent speaker first."""

    __slots__ = ("_order",)

    def __init__(self) -> None:
        self._order: list[str] = []

    def joined(self, participant_id: str) -> None:
        if participant_id not in self._order:
            self._order.append(participant_id)

    def left(self, participant_id: str) -> None:
        if participant_id in self._order:
            self._order.remove(participant_id)

    def spoke(self, participant_id: str) -> bool:
        """``participant_id`` is the active speaker; True if the order changed."""
        if self._order[:1] == [participant_id] or participant_id not in self._order:
            return False
        self._order.remove(participant_id)
        self._order.insert(0, participant_id)
        return True

    def visible_to(self, subscriber_id: str, n: int) -> frozenset[str]:
        """Whose camera video ``subscriber_id`` gets: the first ``n`` others."""
        return frozenset([p for p in self._order if p != subscriber_id][:n])
