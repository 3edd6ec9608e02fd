"""Removal bars, name normalisation, participant keys and waiting-room caps (pure)."""

from __future__ import annotations

import pytest

from mediaserver.lobby.identity import Bar, Identity, normalise_name
from mediaserver.lobby.keys import issue_key, new_client_id, read_key
from mediaserver.lobby.policy import decide_knock, link_role

SECRET = b"s" * 32


@pytest.mark.parametrize(
    "name",
    [
        "Xena",
        "xena",
        " XENA ",
        "Xe\u200bna",  # zero-width space
        "X\u200de\u2060na",  # zero-width joiner, word joiner
        "Xe\u00adna",  # soft hyphen
        "\ufeffXena",  # BOM
        "\uff38\uff45\uff4e\uff41",  # fullwidth
        "X e n a",
        "X\u00a0ena",  # no-break space
        "Xe\u0301na",  # combining accent
        "X\u00e9na",  # precomposed accent
    ],
)
def test_look_alike_names_normalise_to_one(name):
    assert normalise_name(name) == "xena"


def test_different_names_stay_different():
    assert normalise_name("Xena") != normalise_name("Xenia")
    assert normalise_name("Gus") != normalise_name("Gus2")


def test_bar_matches_each_part_of_an_identity():
    bar = Bar()
    bar.add(Identity("c1", user_id="u1", name_key="gus", invite_id="inv1"))
    assert bar.bars(Identity("c1"))  # same key, any name
    assert bar.bars(Identity("c2", user_id="u1"))
    assert bar.bars(Identity("c2", name_key="gus"))
    assert bar.bars(Identity("c2", invite_id="inv1"))
    assert not bar.bars(Identity("c2", name_key="ann"))
    assert not bar.bars(Identity("c2", user_id="u2", invite_id="inv2"))
    assert not bar.host_link_suspended


def test_removing_a_host_link_holder_suspends_the_host_link():
    bar = Bar()
    bar.add(Identity("c1", name_key="hana", via_host_link=True))
    assert bar.host_link_suspended
    assert link_role("host", via_host_link=True, host_link_suspended=True) == "guest"
    assert link_role("host", via_host_link=False, host_link_suspended=True) == "host"
    assert link_role("host", via_host_link=True, host_link_suspended=False) == "host"


def test_participant_key_round_trip_and_forgery():
    cid = new_client_id()
    key = issue_key(SECRET, "lnk_a", cid)
    assert read_key(SECRET, "lnk_a", key) == cid
    assert read_key(SECRET, "lnk_b", key) is None  # another meeting
    assert read_key(b"x" * 32, "lnk_a", key) is None  # another server secret
    prefix, payload, mac = key.split(".")
    forged = issue_key(b"attacker", "lnk_a", "someone-else").split(".")
    assert read_key(SECRET, "lnk_a", f"{prefix}.{forged[1]}.{mac}") is None
    for junk in ("", "pk1", "pk1..", "pk1.!!.??", "x" * 300, f"{prefix}.{payload}"):
        assert read_key(SECRET, "lnk_a", junk) is None


def test_knock_caps():
    ok = dict(waiting=0, waiting_from_address=0, max_waiting=5, max_per_address=2)
    assert decide_knock(**ok) is None
    full = decide_knock(**{**ok, "waiting": 5})
    assert full is not None and full.code == "lobby_full"
    per = decide_knock(**{**ok, "waiting": 3, "waiting_from_address": 2})
    assert per is not None and per.code == "lobby_full" and "address" in per.message
    assert decide_knock(**{**ok, "waiting_from_address": 50, "max_per_address": 0}) is None


def test_join_key_field_is_validated():
    from mediaserver.signalling import messages as m

    join = m.parse({"type": "join", "link": "abc", "name": "A", "key": "pk1.YWJj.ZGVm"})
    assert isinstance(join, m.Join) and join.key == "pk1.YWJj.ZGVm"
    for bad in ("", "pk1 x", "k" * 300, "pk1.\u00e9"):
        with pytest.raises(m.ProtocolError) as exc:
            m.parse({"type": "join", "link": "abc", "name": "A", "key": bad})
        assert exc.value.code in ("invalid_field", "missing_field")
