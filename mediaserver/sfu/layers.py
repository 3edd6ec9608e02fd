"""Which simulcast layer a subscriber gets: a pure policy (no IO, time passed in).

The subscriber tells the server the size it renders a publication at (0 x 0: not
visible). The layer wanted is the smallest one that covers that size; the subscriber's
bandwidth estimate (its REMB, shared between its visible simulcast tiles by rendered
area) caps it. A smaller size steps down at once, an estimate that stays short for
``down_after`` seconds (not a passing dip) too. Up-steps happen at once when the
estimate shows room, otherwise one step at a time after ``up_hold`` seconds without a
change, once the estimate covers the current layer: a receiver's REMB only rises to
about 1.5 x what it receives, so without padding probes the only way to find out
whether a higher layer fits is to try it. After such a probe the estimate gets
``probe_grace`` seconds to follow before a shortfall steps down again (unless it is
too low even for the layer below). A down-step forced by the estimate holds further
up-steps off for ``backoff`` seconds (doubling up to ``max_backoff`` while it keeps
happening).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["LayerInfo", "LayerSelector", "covering_layer", "split_budget"]

#: A layer covers a rendered size if it is at least this fraction of it (rounding of
#: scaleResolutionDownBy and of CSS pixels must not pull in the next layer up).
COVER_SLACK = 0.9
#: The estimate must be this far below the layer's bitrate to step down (hysteresis).
DOWN_MARGIN = 0.75


@dataclass(frozen=True, slots=True)
class LayerInfo:
    """One layer as the server sees it; layers are passed ordered low to high."""

    width: int  # 0: not known yet
    height: int
    bitrate: int  # bits/s measured over the last second (0: not known)
    active: bool  # packets arrived recently


def covering_layer(layers: Sequence[LayerInfo], width: int, height: int) -> int:
    """Index of the smallest active layer covering ``width`` x ``height`` (the highest
    active layer if none does; -1 if no layer is active)."""
    active = [i for i, layer in enumerate(layers) if layer.active]
    if not active:
        return -1
    for i in active:
        layer = layers[i]
        if not layer.width:
            continue
        if layer.width >= width * COVER_SLACK and layer.height >= height * COVER_SLACK:
            return i
    return active[-1]


def split_budget(estimate: int | None, areas: Sequence[int]) -> list[int | None]:
    """Share one subscriber's estimate between its tiles in proportion to their area."""
    if estimate is None:
        return [None] * len(areas)
    total = sum(a for a in areas if a > 0)
    return [int(estimate * a / total) if total and a > 0 else 0 for a in areas]


class LayerSelector:
    """The per-subscription decision, with the hysteresis state it needs."""

    __slots__ = (
        "_backoff",
        "_held_until",
        "_last_change",
        "_probing",
        "_short_since",
        "backoff",
        "down_after",
        "max_backoff",
        "probe_grace",
        "up_hold",
    )

    def __init__(
        self,
        *,
        up_hold: float = 2.0,
        backoff: float = 8.0,
        max_backoff: float = 60.0,
        probe_grace: float = 8.0,
        down_after: float = 1.0,
    ) -> None:
        self.up_hold = up_hold
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.probe_grace = probe_grace
        self.down_after = down_after
        self._short_since: float | None = None  # since when the estimate falls short
        self._backoff = backoff
        self._last_change = float("-inf")
        self._held_until = float("-inf")
        self._probing = False  # the last change was a step up by the timer

    def decide(
        self,
        layers: Sequence[LayerInfo],
        width: int,
        height: int,
        budget: int | None,
        current: int,
        now: float,
    ) -> int:
        """The layer to forward next (``current``: -1 if none yet); -1 = forward none."""
        if width <= 0 or height <= 0:
            return -1
        wanted = covering_layer(layers, width, height)
        if wanted < 0:
            return current
        fits = wanted
        if budget is not None:
            while fits > 0 and not _fits(layers[fits], budget, 1.0):
                fits -= 1
            while fits > 0 and not layers[fits].active:
                fits -= 1
        if current < 0 or current >= len(layers) or not layers[current].active:
            return self._changed(min(wanted, fits), now)
        if wanted < current:  # rendered smaller: no reason to wait
            return self._changed(wanted if fits >= wanted else fits, now)
        # After a step up by the timer the estimate needs time to follow what is now
        # received: only an estimate too low even for the layer below steps down early.
        hold = self.probe_grace if self._probing else self.up_hold
        collapsed = current > 0 and not _fits(layers[current - 1], budget or 0, 1.0)
        short = budget is not None and not _fits(layers[current], budget, DOWN_MARGIN)
        if not short:
            self._short_since = None
        elif self._short_since is None:
            self._short_since = now
        if (
            short
            and self._short_since is not None
            and now - self._short_since >= self.down_after  # not a passing dip
            and (now - self._last_change >= hold or (self._probing and collapsed))
        ):
            target = min(fits, current - 1) if current > 0 else current
            if target != current:
                self._held_until = now + self._backoff
                self._backoff = min(self._backoff * 2, self.max_backoff)
                return self._changed(target, now)
            return current
        if wanted > current:
            if fits > current:
                return self._changed(fits, now)
            sustained = budget is None or _fits(layers[current], budget, 1.0)
            if (
                sustained  # the estimate has caught up with what is received now
                and now >= self._held_until
                and now - self._last_change >= self.up_hold
            ):
                nxt = current + 1
                while nxt < wanted and not layers[nxt].active:
                    nxt += 1
                self._changed(nxt, now)
                self._probing = True
                return nxt
        elif now - self._last_change >= 4 * self._backoff:
            self._backoff = self.backoff  # stable for long: forget past congestion
        return current

    def _changed(self, target: int, now: float) -> int:
        self._last_change = now
        self._probing = False
        self._short_since = None
        return target


def _fits(layer: LayerInfo, budget: int, margin: float) -> bool:
    return layer.bitrate == 0 or layer.bitrate * margin <= budget
