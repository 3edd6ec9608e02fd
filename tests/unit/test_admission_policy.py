from __future__ import annotations

import pytest

from mediaserver.lobby.policy import decide_admission, effective_guest_policy


def decide(**kw):
    base = dict(
        role="guest",
        guest_policy="lobby",
        locked=False,
        barred=False,
        guests_in_room=0,
        max_guests=0,
    )
    return decide_admission(**{**base, **kw})


@pytest.mark.parametrize("role", ["host", "member"])
def test_hosts_and_members_never_wait(role):
    for policy in ("allow", "lobby", "deny"):
        assert decide(role=role, guest_policy=policy, locked=True).action == "admit"


def test_barred_is_refused_whatever_the_role():
    for role in ("host", "member", "guest"):
        d = decide(role=role, barred=True)
        assert (d.action, d.code) == ("refuse", "removed")


@pytest.mark.parametrize(
    ("kw", "action", "code"),
    [
        ({"guest_policy": "allow"}, "admit", ""),
        ({"guest_policy": "lobby"}, "lobby", ""),
        ({"guest_policy": "deny"}, "refuse", "guests_denied"),
        ({"guest_policy": "allow", "locked": True}, "refuse", "room_locked"),
        ({"guest_policy": "lobby", "locked": True}, "refuse", "room_locked"),
        ({"guest_policy": "allow", "guests_in_room": 3, "max_guests": 3}, "refuse", "guests_full"),
        ({"guest_policy": "allow", "guests_in_room": 2, "max_guests": 3}, "admit", ""),
    ],
)
def test_guest_decisions(kw, action, code):
    d = decide(**kw)
    assert (d.action, d.code) == (action, code)


def test_effective_policy():
    assert effective_guest_policy({}, "deny") == "deny"
    assert effective_guest_policy({"guest_policy": "allow"}, "deny") == "allow"
    assert effective_guest_policy({"guest_policy": "lobby", "waiting_room": False}) == "allow"
    assert effective_guest_policy({"guest_policy": "deny", "waiting_room": False}) == "deny"
    assert effective_guest_policy({"guest_policy": "bogus"}) == "lobby"
