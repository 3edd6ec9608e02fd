"""Room tokens (ad-hoc rooms) and join tokens: signing and verification, pure."""

from __future__ import annotations

import base64
import json

import pytest

from linkapi.secrets_ import (
    ExpiredToken,
    InvalidToken,
    JoinClaims,
    RoomClaims,
    load_token_secret,
    mint_room_token,
    sign_join_token,
    sign_room_token,
    verify_join_token,
    verify_room_token,
)

KEY = b"k" * 48
NOW = 1_900_000_000.0


def claims(**over: object) -> RoomClaims:
    base: dict[str, object] = {
        "room": "standup",
        "tenant_id": "",
        "user_id": "u-1",
        "name": "Ada",
        "role": "member",
        "expires_at": NOW + 60,
        "token_id": "j1",
    }
    return RoomClaims(**{**base, **over})  # type: ignore[arg-type]


def rejected(token: str, reason: str, *, room: str = "standup", key: bytes = KEY) -> None:
    with pytest.raises(InvalidToken) as exc:
        verify_room_token(key, token, room=room, now=NOW)
    assert str(exc.value) == reason
    assert not isinstance(exc.value, ExpiredToken)


def payload(token: str) -> dict[str, object]:
    body = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))


def test_round_trip_and_format() -> None:
    token = sign_room_token(KEY, claims())
    assert token.startswith("mrt1.") and token.count(".") == 2
    assert payload(token) == {
        "rid": "standup",
        "ten": "",
        "sub": "u-1",
        "name": "Ada",
        "role": "member",
        "exp": int(NOW + 60),
        "jti": "j1",
        "v": 1,
    }
    got = verify_room_token(KEY, token, room="standup", now=NOW)
    assert got == claims()
    assert got.room_id == "standup"


def test_mint_defaults_identity_to_the_name_and_rounds_expiry() -> None:
    token, minted = mint_room_token(KEY, "r", "Bob", role="host", ttl_seconds=30.7, now=NOW)
    assert (minted.user_id, minted.role, minted.expires_at) == ("Bob", "host", NOW + 30)
    assert verify_room_token(KEY, token, room="r", now=NOW) == minted
    other, again = mint_room_token(KEY, "r", "Bob", now=NOW)
    assert other != token and again.token_id != minted.token_id  # a fresh id each time
    with pytest.raises(ValueError, match="role"):
        mint_room_token(KEY, "r", "Bob", role="admin")


def test_tenant_rooms_are_namespaced() -> None:
    token = sign_room_token(KEY, claims(tenant_id="tn_A"))
    got = verify_room_token(KEY, token, room="standup", now=NOW)
    assert got.room_id == "tn_A/standup"
    assert claims(tenant_id="tn_B").room_id != got.room_id != claims().room_id


def test_expired_is_its_own_error() -> None:
    token = sign_room_token(KEY, claims(expires_at=NOW - 1))
    with pytest.raises(ExpiredToken, match="token expired"):
        verify_room_token(KEY, token, room="standup", now=NOW)
    assert verify_room_token(KEY, token, room="standup", now=NOW - 1)  # valid until then


def test_wrong_key_tampering_and_garbage_are_refused() -> None:
    token = sign_room_token(KEY, claims())
    rejected(token, "bad signature", key=b"x" * 48)
    kind, body, mac = token.split(".")
    forged = sign_room_token(b"x" * 48, claims(role="host")).split(".")[1]
    rejected(f"{kind}.{forged}.{mac}", "bad signature")  # claims swapped under the MAC
    rejected(f"{kind}.{body}.{mac[:-2]}AA", "bad signature")
    rejected(f"{kind}.{body}.", "bad signature")
    rejected(f"{kind}.{body}.A", "malformed token")  # not base64
    for garbage in ("", "mrt1", "mrt1.a", "mrt1.a.b.c", "x" * 3000, f"mrt2.{body}.{mac}"):
        rejected(garbage, "malformed token")


def test_claims_are_checked_after_the_signature() -> None:
    rejected(sign_room_token(KEY, claims()), "token is for another room", room="other")
    rejected(sign_room_token(KEY, claims(room="Standup")), "token is for another room")
    rejected(sign_room_token(KEY, claims(role="admin")), "bad role")
    rejected(sign_room_token(KEY, claims(name="  ")), "malformed token")
    # a correctly signed body that is not an object, or lacks a claim
    from linkapi.secrets_ import _sign

    rejected(_sign(KEY, "mrt1", {"rid": "standup"}), "malformed token")
    assert _sign(KEY, "mrt1", {}).startswith("mrt1.")


def test_join_tokens_and_room_tokens_never_pass_for_each_other() -> None:
    join = sign_join_token(
        KEY,
        JoinClaims(
            link_id="standup",
            user_id="u-1",
            name="Ada",
            role="host",
            expires_at=NOW + 60,
            token_id="j",
        ),
    )
    assert verify_join_token(KEY, join, link_id="standup", now=NOW).role == "host"
    rejected(join, "malformed token")
    # the same body and MAC relabelled: the MAC covers the kind
    rejected("mrt1." + join.split(".", 1)[1], "bad signature")
    room = sign_room_token(KEY, claims())
    with pytest.raises(InvalidToken, match="malformed"):
        verify_join_token(KEY, room, link_id="standup", now=NOW)
    with pytest.raises(InvalidToken, match="bad signature"):
        verify_join_token(KEY, "mjt1." + room.split(".", 1)[1], link_id="standup", now=NOW)


class Store:
    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}

    async def get_or_create_secret(self, name: str, candidate: str) -> str:
        return self.secrets.setdefault(name, candidate)


async def test_one_key_from_config_or_the_store() -> None:
    store = Store()
    assert await load_token_secret("c" * 32, store) == b"c" * 32
    assert store.secrets == {}  # a configured key is not stored
    first = await load_token_secret("", store)
    assert len(first) >= 32 and await load_token_secret("", store) == first
    assert store.secrets == {"join_token_secret": first.decode()}  # shared with join tokens
