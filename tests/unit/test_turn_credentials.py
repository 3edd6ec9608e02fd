"""Short-lived TURN credentials and the [turn] section."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from mediaserver.config import ConfigError, load_config
from mediaserver.sfu.turn import turn_credentials, turn_ice_server


def test_username_is_expiry_and_participant_password_is_hmac_sha1():
    username, password = turn_credentials("s3cret", "PA_abc", 600, now=1_000_000.7)
    assert username == "1000600:PA_abc"
    expected = hmac.new(b"s3cret", b"1000600:PA_abc", hashlib.sha1).digest()
    assert base64.b64decode(password) == expected
    server = turn_ice_server(["turn:t:3478"], "s3cret", "PA_abc", 600)
    assert server["urls"] == ["turn:t:3478"] and server["username"].endswith(":PA_abc")


def test_turn_section_validation():
    env = {"MEDIASERVER_TURN_URLS": "turn:turn.example.com:3478?transport=udp"}
    with pytest.raises(ConfigError, match=r"turn\.secret"):
        load_config(None, env=env)
    config = load_config(None, env={**env, "MEDIASERVER_TURN_SECRET": "x" * 32})
    assert config.turn.urls == ("turn:turn.example.com:3478?transport=udp",)
    with pytest.raises(ConfigError, match=r"turn.urls\[0\]"):
        load_config(None, env={"MEDIASERVER_TURN_URLS": "stun:x:3478"})
