"""Unit tests for mediaserver.signalling.messages (strict client message parsing)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mediaserver.signalling import messages as m
from mediaserver.signalling.messages import (
    CLIENT_MESSAGES,
    Admit,
    AdmitAll,
    EndMeeting,
    ErrorCode,
    Hello,
    IceCandidate,
    Join,
    Leave,
    LockRoom,
    Mute,
    MuteAll,
    Pin,
    Ping,
    ProtocolError,
    Publish,
    Refuse,
    RemoveParticipant,
    RestartSubscriber,
    SetGuestPolicy,
    SetRecording,
    StopScreenShare,
    SubscribeAnswer,
    UnlockMedia,
    VideoSize,
    decode,
    error,
    parse,
)

SDP = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
CANDIDATE = {
    "candidate": "candidate:1 1 udp 2130706431 192.0.2.1 40000 typ host",
    "sdpMid": "0",
    "sdpMLineIndex": 0,
}

#: One valid message per type, with every required field (and no optional ones).
VALID: dict[str, dict[str, Any]] = {
    "hello": {"type": "hello", "version": 1},
    "join": {"type": "join", "room": "team-standup_2024.q1"},
    "publish": {"type": "publish", "sdp": SDP},
    "subscribe_answer": {"type": "subscribe_answer", "sdp": SDP},
    "ice_candidate": {"type": "ice_candidate", "target": "publisher", "candidate": CANDIDATE},
    "mute": {"type": "mute", "publication_id": "PU1234", "muted": True},
    "leave": {"type": "leave"},
    "ping": {"type": "ping"},
    "restart_subscriber": {"type": "restart_subscriber"},
    "admit": {"type": "admit", "knock_id": "KN_1"},
    "admit_all": {"type": "admit_all"},
    "refuse": {"type": "refuse", "knock_id": "KN_1", "message": "not today"},
    "set_guest_policy": {"type": "set_guest_policy", "policy": "deny"},
    "mute_all": {"type": "mute_all", "kind": "audio", "lock": True},
    "unlock_media": {"type": "unlock_media", "kind": "video"},
    "remove_participant": {"type": "remove_participant", "participant_id": "PA_1"},
    "lock_room": {"type": "lock_room", "locked": True},
    "end_meeting": {"type": "end_meeting"},
    "set_recording": {"type": "set_recording", "active": True},
    "video_size": {"type": "video_size", "publication_id": "PU1", "width": 320, "height": 180},
    "stop_screen_share": {"type": "stop_screen_share", "participant_id": "PA_1"},
    "pin": {"type": "pin", "participant_id": "PA_1", "pinned": True},
}
CLASSES = {
    "hello": Hello,
    "join": Join,
    "publish": Publish,
    "subscribe_answer": SubscribeAnswer,
    "ice_candidate": IceCandidate,
    "mute": Mute,
    "leave": Leave,
    "ping": Ping,
    "restart_subscriber": RestartSubscriber,
    "admit": Admit,
    "admit_all": AdmitAll,
    "refuse": Refuse,
    "set_guest_policy": SetGuestPolicy,
    "mute_all": MuteAll,
    "unlock_media": UnlockMedia,
    "remove_participant": RemoveParticipant,
    "lock_room": LockRoom,
    "end_meeting": EndMeeting,
    "set_recording": SetRecording,
    "video_size": VideoSize,
    "stop_screen_share": StopScreenShare,
    "pin": Pin,
}
REQUIRED = {
    "hello": ["version"],
    "join": ["room"],
    "publish": ["sdp"],
    "subscribe_answer": ["sdp"],
    "ice_candidate": ["target", "candidate"],
    "mute": ["publication_id", "muted"],
    "leave": [],
    "ping": [],
    "restart_subscriber": [],
    "admit": ["knock_id"],
    "admit_all": [],
    "refuse": ["knock_id"],
    "set_guest_policy": ["policy"],
    "mute_all": ["kind"],
    "unlock_media": ["kind"],
    "remove_participant": ["participant_id"],
    "lock_room": ["locked"],
    "end_meeting": [],
    "set_recording": ["active"],
    "video_size": ["publication_id", "width", "height"],
    "stop_screen_share": ["participant_id"],
    "pin": ["participant_id", "pinned"],
}


def fails(obj: Any, code: str, *needles: str) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse(obj)
    exc = info.value
    assert exc.code == code, f"{exc.code}: {exc.message}"
    assert str(exc) or exc.message
    for needle in needles:
        assert needle in exc.message, f"{needle!r} not in {exc.message!r}"
    return exc


def with_(mtype: str, **fields: Any) -> dict[str, Any]:
    obj = dict(VALID[mtype])
    obj.update(fields)
    return obj


# --- valid messages -------------------------------------------------------------------


def test_every_client_type_is_covered() -> None:
    assert set(CLIENT_MESSAGES) == set(VALID) == set(CLASSES)
    for name, cls in CLIENT_MESSAGES.items():
        assert cls.TYPE == name
        assert CLASSES[name] is cls


@pytest.mark.parametrize("mtype", sorted(VALID))
def test_valid_message_parses(mtype: str) -> None:
    msg = parse(dict(VALID[mtype]))
    assert type(msg) is CLASSES[mtype]
    assert msg.TYPE == mtype
    assert msg.id is None
    for key, value in VALID[mtype].items():
        if key != "type":
            assert getattr(msg, key) == value


@pytest.mark.parametrize("mtype", sorted(VALID))
@pytest.mark.parametrize("ref", ["abc", "x" * 64, 0, 17, -3, 2**53])
def test_valid_message_keeps_id(mtype: str, ref: str | int) -> None:
    assert parse(with_(mtype, id=ref)).id == ref


def test_valid_messages_field_values() -> None:
    hello = parse({"type": "hello", "version": 1, "client": "web/1.2"})
    assert isinstance(hello, Hello) and hello.version == 1 and hello.client == "web/1.2"
    assert parse({"type": "hello", "version": 1, "client": ""}).client == ""  # type: ignore[attr-defined]
    assert parse({"type": "hello", "version": 7}).version == 7  # type: ignore[attr-defined]

    join = parse({"type": "join", "room": "R1", "name": "  Zoë 山田 🎉 "})
    assert isinstance(join, Join) and join.room == "R1" and join.name == "  Zoë 山田 🎉 "

    sa = parse({"type": "subscribe_answer", "sdp": SDP, "revision": 4})
    assert isinstance(sa, SubscribeAnswer) and sa.revision == 4
    assert parse(dict(VALID["subscribe_answer"])).revision == 0  # type: ignore[attr-defined]

    end = parse({"type": "ice_candidate", "target": "subscriber", "candidate": None})
    assert isinstance(end, IceCandidate) and end.candidate is None and end.target == "subscriber"
    minimal = parse(
        {"type": "ice_candidate", "target": "publisher", "candidate": {"candidate": ""}}
    )
    assert minimal.candidate == {"candidate": ""}  # type: ignore[attr-defined]
    extra_keys = {**CANDIDATE, "usernameFragment": "abcd", "sdpMid": None, "sdpMLineIndex": None}
    ok = parse({"type": "ice_candidate", "target": "publisher", "candidate": extra_keys})
    assert ok.candidate == extra_keys  # type: ignore[attr-defined]

    unmute = parse({"type": "mute", "publication_id": "PU1", "muted": False})
    assert isinstance(unmute, Mute) and unmute.muted is False


@pytest.mark.parametrize(
    ("mtype", "field", "limit"),
    [
        ("hello", "client", 128),
        ("join", "room", m.MAX_ROOM_CHARS),
        ("join", "name", m.MAX_NAME_CHARS),
        ("publish", "sdp", m.MAX_SDP_CHARS),
        ("subscribe_answer", "sdp", m.MAX_ANSWER_SDP_CHARS),
        ("mute", "publication_id", 64),
    ],
)
def test_string_length_limits(mtype: str, field: str, limit: int) -> None:
    assert getattr(parse(with_(mtype, **{field: "a" * limit})), field) == "a" * limit
    fails(with_(mtype, **{field: "a" * (limit + 1)}), ErrorCode.INVALID_FIELD, field, str(limit))


def test_limits_have_expected_values() -> None:
    assert (m.MAX_NAME_CHARS, m.MAX_ROOM_CHARS, m.MAX_SDP_CHARS) == (64, 128, 60_000)


def test_candidate_string_limit() -> None:
    ok = {**CANDIDATE, "candidate": "c" * 1024}
    assert parse(with_("ice_candidate", candidate=ok)).candidate == ok  # type: ignore[attr-defined]
    fails(
        with_("ice_candidate", candidate={**CANDIDATE, "candidate": "c" * 1025}),
        ErrorCode.INVALID_FIELD,
        "candidate.candidate",
    )


# --- missing / unknown fields ---------------------------------------------------------

MISSING_CASES = [(t, f) for t, fs in REQUIRED.items() for f in fs]


@pytest.mark.parametrize(("mtype", "field"), MISSING_CASES)
def test_missing_required_field(mtype: str, field: str) -> None:
    obj = with_(mtype, id="req-1")
    del obj[field]
    exc = fails(obj, ErrorCode.MISSING_FIELD, repr(field), mtype)
    assert exc.ref == "req-1"


def test_missing_several_fields_names_one_of_them() -> None:
    exc = fails({"type": "join"}, ErrorCode.MISSING_FIELD)
    assert "'room'" in exc.message or "'name'" in exc.message


def test_optional_fields_are_not_required() -> None:
    assert parse({"type": "hello", "version": 1}).client == ""  # type: ignore[attr-defined]
    assert parse({"type": "subscribe_answer", "sdp": SDP}).revision == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("mtype", "extra"),
    [
        (mtype, extra)
        for mtype in sorted(VALID)
        for extra in ["extra", "TYPE", "Version", "room_id", "validate", ""]
        if extra not in VALID[mtype]  # not a real field of this type
    ],
)
def test_unknown_field(mtype: str, extra: str) -> None:
    exc = fails(with_(mtype, id=5, **{extra: 1}), ErrorCode.UNKNOWN_FIELD, repr(extra), mtype)
    assert exc.ref == 5


def test_fields_of_other_types_are_unknown() -> None:
    fails(with_("ping", room="r"), ErrorCode.UNKNOWN_FIELD, "'room'")
    fails(with_("leave", sdp=SDP), ErrorCode.UNKNOWN_FIELD, "'sdp'")
    fails(with_("publish", revision=1), ErrorCode.UNKNOWN_FIELD, "'revision'")
    fails(with_("hello", name="x"), ErrorCode.UNKNOWN_FIELD, "'name'")


def test_unknown_field_name_is_truncated_in_message() -> None:
    exc = fails(with_("ping", **{"k" * 5000: 1}), ErrorCode.UNKNOWN_FIELD)
    assert len(exc.message) < 200


# --- wrong types and values -----------------------------------------------------------

INVALID_CASES = [
    # hello
    ("hello", "version", "1"),
    ("hello", "version", True),
    ("hello", "version", False),
    ("hello", "version", 1.0),
    ("hello", "version", None),
    ("hello", "version", [1]),
    ("hello", "client", 5),
    ("hello", "client", None),
    ("hello", "client", ["web"]),
    # join
    ("join", "room", 5),
    ("join", "room", True),
    ("join", "room", {"id": "r"}),
    ("join", "room", ""),
    ("join", "room", "   "),
    ("join", "name", 5),
    ("join", "name", ["Ada"]),
    ("join", "name", ""),
    ("join", "name", " \t "),
    # publish / subscribe_answer
    ("publish", "sdp", 5),
    ("publish", "sdp", None),
    ("publish", "sdp", ""),
    ("publish", "sdp", "  "),
    ("publish", "sdp", {"type": "offer", "sdp": SDP}),
    ("subscribe_answer", "sdp", 0),
    ("subscribe_answer", "sdp", ""),
    ("subscribe_answer", "revision", True),
    ("subscribe_answer", "revision", "3"),
    ("subscribe_answer", "revision", 3.0),
    ("subscribe_answer", "revision", None),
    # ice_candidate
    ("ice_candidate", "target", "both"),
    ("ice_candidate", "target", "Publisher"),
    ("ice_candidate", "target", 1),
    ("ice_candidate", "target", None),
    ("ice_candidate", "candidate", "candidate:1 1 udp 1 1.2.3.4 5 typ host"),
    ("ice_candidate", "candidate", ["candidate"]),
    ("ice_candidate", "candidate", 0),
    ("ice_candidate", "candidate", True),
    # mute
    ("mute", "publication_id", 1234),
    ("mute", "publication_id", None),
    ("mute", "publication_id", ""),
    ("mute", "muted", 1),
    ("mute", "muted", 0),
    ("mute", "muted", "true"),
    ("mute", "muted", None),
]


@pytest.mark.parametrize(("mtype", "field", "value"), INVALID_CASES)
def test_invalid_field(mtype: str, field: str, value: Any) -> None:
    exc = fails(with_(mtype, id="r9", **{field: value}), ErrorCode.INVALID_FIELD, field)
    assert exc.message.startswith(f"{mtype}: {field}")
    assert exc.ref == "r9"


@pytest.mark.parametrize(
    ("candidate", "field"),
    [
        ({}, "candidate.candidate"),
        ({"sdpMid": "0"}, "candidate.candidate"),
        ({**CANDIDATE, "candidate": 7}, "candidate.candidate"),
        ({**CANDIDATE, "candidate": None}, "candidate.candidate"),
        ({**CANDIDATE, "sdpMid": 0}, "candidate.sdpMid"),
        ({**CANDIDATE, "sdpMid": ["0"]}, "candidate.sdpMid"),
        ({**CANDIDATE, "sdpMLineIndex": "0"}, "candidate.sdpMLineIndex"),
        ({**CANDIDATE, "sdpMLineIndex": True}, "candidate.sdpMLineIndex"),
        ({**CANDIDATE, "sdpMLineIndex": -1}, "candidate.sdpMLineIndex"),
        ({**CANDIDATE, "sdpMLineIndex": 0.0}, "candidate.sdpMLineIndex"),
    ],
)
def test_invalid_candidate_object(candidate: dict[str, Any], field: str) -> None:
    fails(with_("ice_candidate", candidate=candidate), ErrorCode.INVALID_FIELD, field)


@pytest.mark.parametrize(
    "room",
    [
        "a b",
        "room/1",
        "../etc",
        "a:b",
        "a#b",
        "a?b",
        "a%20b",
        "a\x00b",
        "a\nb",
        "tab\there",
        "emoji🎉",
        "a+b",
        "a@b",
        "a\\b",
    ],
)
def test_invalid_room_ids(room: str) -> None:
    fails(with_("join", room=room), ErrorCode.INVALID_FIELD, "room")


@pytest.mark.parametrize("room", ["a", "A-b_c.d", "2024", "x" * 128, "Room.42-x_y"])
def test_valid_room_ids(room: str) -> None:
    assert parse(with_("join", room=room)).room == room  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "name",
    [
        "a\x00",
        "\x01bc",
        "new\nline",
        "car\rriage",
        "tab\tbed",
        "esc\x1b[31m",
        "del\x7f",
        "unit\x1fsep",
    ],
)
def test_control_characters_in_name(name: str) -> None:
    fails(with_("join", name=name), ErrorCode.INVALID_FIELD, "name", "control")


@pytest.mark.parametrize("name", ["csi\x9b31m", "next\x85line", "\x80x"])
def test_c1_control_characters_in_name(name: str) -> None:
    fails(with_("join", name=name), ErrorCode.INVALID_FIELD, "name", "control")


@pytest.mark.parametrize("ref", [True, False, 1.5, [1], {"a": 1}, "x" * 65])
def test_invalid_id(ref: Any) -> None:
    exc = fails({"type": "ping", "id": ref}, ErrorCode.INVALID_FIELD, "id")
    assert exc.ref is None  # an invalid id is not echoed


def test_null_id_is_no_id() -> None:
    assert parse({"type": "ping", "id": None}).id is None


# --- type -----------------------------------------------------------------------------


@pytest.mark.parametrize("mtype", [None, 5, True, ["ping"], {"t": 1}])
def test_type_missing_or_not_a_string(mtype: Any) -> None:
    obj: dict[str, Any] = {"id": 3}
    if mtype is not None:
        obj["type"] = mtype
    exc = fails(obj, ErrorCode.MISSING_FIELD, "type")
    assert exc.ref == 3


@pytest.mark.parametrize("mtype", ["", "pong", "PING", "Hello", "error", "welcome", "x" * 1000])
def test_unknown_type(mtype: str) -> None:
    exc = fails({"type": mtype, "id": "abc"}, ErrorCode.UNKNOWN_TYPE)
    assert exc.ref == "abc"
    assert len(exc.message) < 100


def test_unknown_type_is_checked_before_fields() -> None:
    fails({"type": "nope", "whatever": 1}, ErrorCode.UNKNOWN_TYPE)


def test_ref_is_echoed_on_validation_errors_too() -> None:
    assert fails(with_("join", id=0, room=""), ErrorCode.INVALID_FIELD).ref == 0
    assert fails(with_("mute", id="m", muted=1), ErrorCode.INVALID_FIELD).ref == "m"
    assert fails(with_("hello", version="1"), ErrorCode.INVALID_FIELD).ref is None


# --- decode ---------------------------------------------------------------------------


def test_decode_str_and_bytes() -> None:
    assert decode('{"type":"ping","id":1}') == {"type": "ping", "id": 1}
    assert decode(b'{"type": "ping"}') == {"type": "ping"}
    assert decode('{"name":"Zo\\u00eb"}') == {"name": "Zoë"}
    assert decode(b"{}") == {}
    assert decode('{"n": "Zoë"}'.encode()) == {"n": "Zoë"}


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "{",
        "{'type': 'ping'}",
        '{"type": "ping",}',
        "ping",
        b"\xff\xfe\xfd",
        b'{"type": "\xc3\x28"}',  # invalid UTF-8 in a string
        b"\x80",
        b"",
    ],
)
def test_decode_bad_json(raw: str | bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        decode(raw)
    assert info.value.code == ErrorCode.BAD_JSON
    assert info.value.message.startswith("invalid JSON")


@pytest.mark.parametrize("raw", ["[]", '[{"type":"ping"}]', '"ping"', "1", "null", "true", "3.5"])
def test_decode_non_object(raw: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode(raw)
    assert info.value.code == ErrorCode.BAD_MESSAGE


@pytest.mark.parametrize("raw", ["[" * 2000, '{"a":' * 2000, "[" * 60_000 + "]" * 60_000])
def test_decode_deeply_nested_json_is_a_protocol_error(raw: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode(raw)
    assert info.value.code in (ErrorCode.BAD_JSON, ErrorCode.BAD_MESSAGE)


def test_decode_then_parse_roundtrip() -> None:
    for obj in VALID.values():
        msg = parse(decode(json.dumps(obj)))
        assert msg.TYPE == obj["type"]


# --- error() --------------------------------------------------------------------------


def test_error_shape() -> None:
    assert error(ErrorCode.BAD_JSON, "invalid JSON: x") == {
        "type": "error",
        "code": "bad_json",
        "message": "invalid JSON: x",
    }
    assert error(ErrorCode.NOT_FOUND, "nope", "abc") == {
        "type": "error",
        "code": "not_found",
        "message": "nope",
        "ref": "abc",
    }
    assert error("c", "m", 0)["ref"] == 0  # falsy refs are still echoed
    assert error("c", "m", "")["ref"] == ""
    assert "ref" not in error("c", "m", None)
    json.dumps(error("c", "m", 1))


def test_error_codes_are_distinct_snake_case_strings() -> None:
    codes = {k: v for k, v in vars(ErrorCode).items() if k.isupper()}
    assert len(set(codes.values())) == len(codes)
    assert all(v == v.lower() and " " not in v for v in codes.values())
    assert codes["BAD_JSON"] == "bad_json"
    assert codes["INVALID_FIELD"] == "invalid_field"


def test_protocol_error_carries_code_message_ref() -> None:
    exc = ProtocolError(ErrorCode.BAD_STATE, "why", "r")
    assert (exc.code, exc.message, exc.ref, str(exc)) == ("bad_state", "why", "r", "why")
    assert ProtocolError("c", "m").ref is None


def test_join_needs_exactly_one_of_room_or_link() -> None:
    fails({"type": "join", "name": "x"}, ErrorCode.MISSING_FIELD, "exactly one")
    fails({"type": "join", "room": "r", "link": "abc", "name": "x"}, ErrorCode.MISSING_FIELD)
    fails({"type": "join", "room": "lnk_abc", "name": "x"}, ErrorCode.INVALID_FIELD, "room")
    fails({"type": "join", "room": "r", "invite": "i"}, ErrorCode.INVALID_FIELD, "invite")
    fails({"type": "join", "room": "r", "token": " "}, ErrorCode.INVALID_FIELD, "token")
    fails({"type": "join", "room": "r", "token": "t" * 2049}, ErrorCode.INVALID_FIELD, "token")
    fails({"type": "join", "link": "a b"}, ErrorCode.INVALID_FIELD, "link")
    fails({"type": "join", "link": "abc", "token": "t", "invite": "i"}, ErrorCode.INVALID_FIELD)
    fails({"type": "join", "room": "caf\u00e9", "name": "x"}, ErrorCode.INVALID_FIELD, "ASCII")
    assert parse({"type": "join", "link": "abc_DEF-1"}).link == "abc_DEF-1"  # type: ignore[attr-defined]
    msg = parse({"type": "join", "link": "abc", "token": "mjt1.x.y", "name": "Ada"})
    assert msg.token == "mjt1.x.y"  # type: ignore[attr-defined]
    # a join by room: the token (and its absence) is checked by the server, not here
    assert parse({"type": "join", "room": "r"}).token is None  # type: ignore[attr-defined]
    msg = parse({"type": "join", "room": "r", "token": "mrt1.x.y", "name": "Ada"})
    assert msg.token == "mrt1.x.y"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ({"type": "set_guest_policy", "policy": "maybe"}, "policy"),
        ({"type": "mute_all", "kind": "screen"}, "kind"),
        ({"type": "mute_all", "kind": "audio", "lock": "yes"}, "lock"),
        ({"type": "unlock_media", "kind": 1}, "kind"),
        ({"type": "lock_room", "locked": 1}, "locked"),
        ({"type": "set_recording", "active": "yes"}, "active"),
        ({"type": "admit", "knock_id": ""}, "knock_id"),
        ({"type": "refuse", "knock_id": "k", "message": "m" * 501}, "message"),
        ({"type": "remove_participant", "participant_id": 5}, "participant_id"),
    ],
)
def test_host_message_fields(obj: dict[str, Any], field: str) -> None:
    fails(obj, ErrorCode.INVALID_FIELD, field)


def test_publish_sources_name_what_each_mid_carries() -> None:
    msg = parse({"type": "publish", "sdp": SDP, "sources": {"0": "microphone", "2": "screen"}})
    assert isinstance(msg, Publish) and msg.sources == {"0": "microphone", "2": "screen"}
    fails({"type": "publish", "sdp": SDP, "sources": {"1": "window"}}, "invalid_field", "sources")
    fails({"type": "publish", "sdp": SDP, "sources": ["screen"]}, "invalid_field", "sources")


def test_video_size_bounds() -> None:
    base = {"type": "video_size", "publication_id": "PU1"}
    assert isinstance(parse({**base, "width": 0, "height": 0}), VideoSize)
    for w, h in ((-1, 10), (10, 16385), (1.5, 2), (True, 2), ("1", 2)):
        fails({**base, "width": w, "height": h}, "invalid_field")


def test_pin_fields() -> None:
    msg = parse({"type": "pin", "participant_id": "PA_1", "pinned": False, "id": 3})
    assert isinstance(msg, Pin) and msg.pinned is False and msg.participant_id == "PA_1"
    fails({"type": "pin", "participant_id": "PA_1"}, "missing_field", "pinned")
    fails({"type": "pin", "pinned": True}, "missing_field", "participant_id")
    for bad in (1, 0, "true", None):
        fails({"type": "pin", "participant_id": "PA_1", "pinned": bad}, "invalid_field", "pinned")
    for bad_id in ("", "  ", "x" * 65, 7, None):
        fails({"type": "pin", "participant_id": bad_id, "pinned": True}, "invalid_field")
    exc = fails(
        {"type": "pin", "participant_id": "PA_1", "pinned": True, "publication_id": "PU1"},
        "unknown_field",
        "publication_id",
    )
    assert exc.message.startswith("pin: ")
    assert ErrorCode.TOO_MANY_PINS == "too_many_pins"


def test_protocol_doc_lists_every_client_type():
    """docs/protocol.md §2 names exactly the client message types the server parses."""
    import re
    from pathlib import Path

    from mediaserver.signalling.messages import CLIENT_MESSAGES

    doc = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()
    line = next(x for x in doc.splitlines() if "client types:" in x)
    count = int(re.search(r"One of the (\d+) client types", line).group(1))
    names = set(re.findall(r"`([a-z_]+)`", line.split("client types:", 1)[1]))
    assert names == set(CLIENT_MESSAGES)
    assert count == len(CLIENT_MESSAGES)
