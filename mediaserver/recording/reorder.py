"""A small reorder buffer (pure): packets come out in sequence order; a missing packet
is waited for until ``capacity`` later packets are held, then given up as lost."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Released", "ReorderBuffer"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Released(Generic[T]):
    seq: int
    item: T
    #: Packets before this one were given up as lost.
    gap_before: bool


class ReorderBuffer(Generic[T]):
    """Takes extended (unwrapped) sequence numbers. Duplicates and packets older than
    what was already released are dropped and counted."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._held: dict[int, T] = {}
        self._next: int | None = None
        self.late = 0
        self.lost = 0

    def push(self, seq: int, item: T) -> list[Released[T]]:
        if self._next is None:
            self._next = seq
        if seq < self._next or seq in self._held:
            self.late += 1
            return []
        if seq - self._next > 4 * self.capacity:
            # a jump far ahead (a restarted sender): give up everything held
            out = self.flush()
            self._next = seq
            self._held[seq] = item
            return [*out, *self._release(gap=True)]
        self._held[seq] = item
        return self._release(gap=False)

    def _release(self, *, gap: bool) -> list[Released[T]]:
        out: list[Released[T]] = []
        assert self._next is not None
        while True:
            item = self._held.pop(self._next, None)
            if item is not None:
                out.append(Released(self._next, item, gap))
                gap = False
                self._next += 1
                continue
            if len(self._held) < self.capacity:
                return out
            # the oldest missing packet is given up: skip to the first one held
            first = min(self._held)
            self.lost += first - self._next
            self._next = first
            gap = True

    def flush(self) -> list[Released[T]]:
        """Everything held, in order (at the end of a recording)."""
        out: list[Released[T]] = []
        gap = False
        for seq in sorted(self._held):
            if self._next is not None and seq != self._next:
                self.lost += seq - self._next
                gap = True
            out.append(Released(seq, self._held[seq], gap))
            gap = False
            self._next = seq + 1
        self._held.clear()
        return out
