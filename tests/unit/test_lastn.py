"""The last-N selection policy (mediaserver/sfu/lastn.py): speakers, pins, sharers."""

from __future__ import annotations

import pytest

from mediaserver.sfu.base import Refused
from mediaserver.sfu.lastn import MAX_PINS, Pins, SpeakerOrder, video_from


def order_of(*ids: str) -> SpeakerOrder:
    order = SpeakerOrder()
    for p in ids:
        order.joined(p)
    return order


def refused(code: str, fn, *args) -> Refused:  # type: ignore[no-untyped-def]
    with pytest.raises(Refused) as info:
        fn(*args)
    assert info.value.code == code, info.value.message
    assert info.value.message.startswith("pin: ")
    return info.value


def test_without_pins_or_sharers_it_is_the_last_n_speakers() -> None:
    order = order_of("a", "b", "c", "d", "e")
    assert video_from(order, "a", 2) == {"b", "c"}
    order.spoke("e")
    assert video_from(order, "a", 2) == {"e", "b"}
    assert video_from(order, "e", 2) == {"a", "b"}  # never yourself


def test_a_pinned_participant_is_seen_in_addition_to_the_last_n() -> None:
    order = order_of("a", "b", "c", "d", "e")
    pins = Pins()
    assert pins.set("a", "e", True, order) is True
    assert video_from(order, "a", 2, pinned=pins.of("a")) == {"b", "c", "e"}
    # per subscriber: b did not pin e
    assert video_from(order, "b", 2, pinned=pins.of("b")) == {"a", "c"}
    # pinning someone already among the last N changes nothing that is seen
    assert pins.set("a", "b", True, order) is True
    assert video_from(order, "a", 2, pinned=pins.of("a")) == {"b", "c", "e"}
    assert pins.of("a") == ("e", "b")  # in pin order


def test_pin_and_unpin_are_idempotent() -> None:
    order = order_of("a", "b", "c")
    pins = Pins()
    assert pins.set("a", "c", True, order) is True
    assert pins.set("a", "c", True, order) is False
    assert pins.set("a", "c", False, order) is True
    assert pins.set("a", "c", False, order) is False
    assert pins.of("a") == ()
    # unpinning someone who is not (or no longer) in the room is a no-op, not an error
    assert pins.set("a", "gone", False, order) is False


def test_pinning_yourself_or_someone_absent_is_refused() -> None:
    order = order_of("a", "b")
    pins = Pins()
    refused("not_found", pins.set, "a", "a", True, order)
    refused("not_found", pins.set, "a", "zz", True, order)
    assert pins.of("a") == ()


def test_the_pin_limit_holds_per_subscriber() -> None:
    ids = [f"p{i}" for i in range(MAX_PINS + 3)]
    order = order_of("me", "other", *ids)
    pins = Pins()
    for p in ids[:MAX_PINS]:
        assert pins.set("me", p, True, order)
    exc = refused("too_many_pins", pins.set, "me", ids[MAX_PINS], True, order)
    assert str(MAX_PINS) in exc.message
    assert pins.of("me") == tuple(ids[:MAX_PINS])
    assert pins.set("me", ids[0], True, order) is False  # already pinned: not over the limit
    assert pins.set("other", ids[MAX_PINS], True, order)  # another subscriber's own limit
    assert pins.set("me", ids[0], False, order)
    assert pins.set("me", ids[MAX_PINS], True, order)  # room again after an unpin
    assert 4 <= MAX_PINS <= 9


def test_pins_vanish_when_the_pinned_participant_or_the_subscriber_leaves() -> None:
    order = order_of("a", "b", "c", "d")
    pins = Pins()
    pins.set("a", "d", True, order)
    pins.set("b", "d", True, order)
    pins.set("b", "c", True, order)
    pins.set("c", "a", True, order)
    order.left("d")
    pins.left("d")
    assert pins.of("a") == () and pins.of("b") == ("c",)
    assert video_from(order, "a", 1, pinned=pins.of("a")) == {"b"}
    order.left("c")
    pins.left("c")  # c's own pins go too
    assert pins.of("c") == () and pins.of("b") == ()
    # a rejoin under the same id would not bring old pins back
    order.joined("d")
    assert video_from(order, "a", 1, pinned=pins.of("a")) == {"b"}


def test_video_from_ignores_pins_of_people_no_longer_in_the_order() -> None:
    order = order_of("a", "b", "c")
    assert video_from(order, "a", 1, pinned=["gone"], sharing=["gone2"]) == {"b"}


def test_a_screen_sharers_camera_is_exempt_for_everyone_but_itself() -> None:
    order = order_of("a", "b", "c", "d")
    assert video_from(order, "a", 1, sharing=["d"]) == {"b", "d"}
    assert video_from(order, "b", 1, sharing=["d"]) == {"a", "d"}
    assert video_from(order, "d", 1, sharing=["d"]) == {"a"}  # not its own camera
    # sharer, pin and speakers together; overlaps count once
    assert video_from(order, "a", 1, pinned=["c", "d"], sharing=["d", "b"]) == {"b", "c", "d"}
    # the share ends: back to last-N (and the pin)
    assert video_from(order, "a", 1, pinned=["c"], sharing=[]) == {"b", "c"}


def test_a_new_speaker_displaces_the_oldest_but_not_pins_or_sharers() -> None:
    order = order_of("a", "b", "c", "d", "e")
    seen = video_from(order, "a", 2, pinned=["d"], sharing=["e"])
    assert seen == {"b", "c", "d", "e"}
    order.spoke("d")  # a pinned one speaking takes a last-N slot too
    assert video_from(order, "a", 2, pinned=["d"], sharing=["e"]) == {"d", "b", "e"}
    order.spoke("c")
    assert video_from(order, "a", 2, pinned=["d"], sharing=["e"]) == {"c", "d", "e"}
