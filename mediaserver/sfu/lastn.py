"""Last-N: in big rooms each subscriber gets camera video only from the N participants
who spoke most recently (audio and screen shares always), plus the participants it
pinned and anyone sharing their screen. Pure: no IO.

The order starts as join order (so the first N to join are seen before anyone speaks),
and each new active speaker moves to the front.
"""

from __future__ import annotations

from collections.abc import Container, Iterable

from .base import Refused

__all__ = ["MAX_PINS", "Pins", "SpeakerOrder", "video_from"]

#: How many participants one subscriber may pin (docs/protocol.md §16, ``pin``): enough
#: for a few people a viewer follows, too few to defeat last-N in a big room.
MAX_PINS = 4


class SpeakerOrder:
    """Participants, most recent speaker first."""

    __slots__ = ("_order",)

    def __init__(self) -> None:
        self._order: list[str] = []

    def __contains__(self, participant_id: object) -> bool:
        return participant_id in self._order

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


class Pins:
    """Whom each subscriber pinned, in pin order. A pin lasts until it is undone or
    either participant leaves."""

    __slots__ = ("_by", "limit")

    def __init__(self, limit: int = MAX_PINS) -> None:
        self.limit = limit
        self._by: dict[str, list[str]] = {}

    def of(self, subscriber_id: str) -> tuple[str, ...]:
        return tuple(self._by.get(subscriber_id, ()))

    def set(
        self, subscriber_id: str, participant_id: str, pinned: bool, present: Container[str]
    ) -> bool:
        """Pin (or unpin) ``participant_id`` for ``subscriber_id``; True if that changed
        anything. Unpinning someone not pinned (or gone) is a no-op; pinning yourself,
        someone not ``present``, or more than ``limit`` people is :class:`Refused`."""
        mine = self._by.get(subscriber_id, [])
        if not pinned:
            if participant_id not in mine:
                return False
            mine.remove(participant_id)
            if not mine:
                del self._by[subscriber_id]
            return True
        if participant_id == subscriber_id:
            raise Refused("not_found", "pin: you cannot pin yourself")
        if participant_id not in present:
            raise Refused("not_found", f"pin: no participant {participant_id!r}")
        if participant_id in mine:
            return False
        if len(mine) >= self.limit:
            raise Refused(
                "too_many_pins",
                f"pin: at most {self.limit} pinned participants; unpin someone first",
            )
        self._by[subscriber_id] = [*mine, participant_id]
        return True

    def left(self, participant_id: str) -> None:
        """``participant_id`` left: its own pins and every pin of it vanish."""
        self._by.pop(participant_id, None)
        for subscriber_id in [s for s, ids in self._by.items() if participant_id in ids]:
            self.set(subscriber_id, participant_id, False, ())


def video_from(
    order: SpeakerOrder,
    subscriber_id: str,
    n: int,
    *,
    pinned: Iterable[str] = (),
    sharing: Iterable[str] = (),
) -> frozenset[str]:
    """Whose camera video ``subscriber_id`` gets with last-N ``n``: the ``n`` most recent
    speakers among the others, plus whoever it ``pinned`` and whoever is ``sharing`` a
    screen (the presenter's camera too), never itself and only people in ``order``."""
    extra = {p for p in (*pinned, *sharing) if p != subscriber_id and p in order}
    return order.visible_to(subscriber_id, n) | extra
