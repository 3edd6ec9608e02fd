"""Unit tests for mediaserver.config (no network, no real environment)."""

import json
from pathlib import Path

import pytest

from mediaserver.config import (
    Config,
    ConfigError,
    IceServer,
    RtcConfig,
    ServerConfig,
    config_to_dict,
    load_config,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED = REPO_ROOT / "config.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_from_file(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env=env or {})
    return info.value


def error_from_env(env: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(None, env=env)
    return info.value


# --- defaults and the shipped file -------------------------------------------------


def test_defaults_without_file_or_env() -> None:
    config = load_config(None, env={})
    assert config == Config()
    assert config.server.host == "127.0.0.1"
    assert config.server.port == 8080
    assert config.server.public_url == ""
    assert config.server.effective_public_url == "http://127.0.0.1:8080"
    assert config.server.shutdown_grace_seconds == 10.0
    assert config.rtc.ice_addresses == ()
    assert config.rtc.announced_address == ""
    assert (config.rtc.port_min, config.rtc.port_max) == (0, 0)
    assert config.rtc.ice_servers == ()
    assert config.rooms.max_participants == 16
    assert config.rooms.empty_timeout_seconds == 30.0
    assert config.rooms.max_publications_per_participant == 4
    assert config.state.backend == "sqlite"
    assert config.state.data_dir == "data"
    assert config.logging.level == "info"
    assert config.logging.format == "json"
    assert config.metrics.enabled is True
    assert config.metrics.path == "/metrics"
    assert config.signalling.max_message_bytes == 65536
    assert config.signalling.join_timeout_seconds == 10.0


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIASERVER_SERVER_PORT", "9123")
    assert load_config().server.port == 9123


@pytest.mark.parametrize(
    "name", ["MEDIASERVER_CONFIG", "MEDIASERVER_PURE_PYTHON", "MEDIASERVER_NATIVE_SRTP"]
)
def test_process_level_variables_are_not_settings(name: str) -> None:
    config = load_config(None, env={name: "/does/not/exist.toml"})
    assert config == Config()


def test_unrelated_env_vars_are_ignored() -> None:
    config = load_config(None, env={"PATH": "/bin", "MEDIASERVERX_FOO": "1"})
    assert config == Config()


def test_shipped_config_loads() -> None:
    config = load_config(SHIPPED, env={})
    assert config.server.host == "127.0.0.1"
    assert config.server.port == 8080
    assert config.rtc.ice_addresses == ("127.0.0.1",)
    assert config.rtc.ice_servers == ()
    # Apart from ice_addresses the shipped file matches the built-in defaults.
    assert config.rooms == Config().rooms
    assert config.signalling == Config().signalling
    # ... and the metrics are off the public listener (built-in: on it, for compatibility)
    assert config.metrics.listen_address == ("127.0.0.1", 9090)
    assert Config().metrics.listen_address is None
    ipv6 = load_config(None, env={"MEDIASERVER_METRICS_LISTEN": "[::1]:9100"})
    assert ipv6.metrics.listen_address == ("::1", 9100)


def test_shipped_config_has_every_key_with_env_var_name() -> None:
    import tomllib

    text = SHIPPED.read_text(encoding="utf-8")
    data = tomllib.loads(text)
    expected = config_to_dict(Config())
    assert set(data) == set(expected)
    for section, keys in expected.items():
        assert set(data[section]) == set(keys), section
        for key in keys:
            assert f"MEDIASERVER_{section.upper()}_{key.upper()}" in text


# --- file and env layering -----------------------------------------------------------


def test_file_overrides_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[server]
host = "0.0.0.0"
port = 9000
public_url = "https://meet.example.com/"
shutdown_grace_seconds = 3  # an integer is accepted for a float

[rtc]
ice_addresses = ["192.0.2.10", "2001:db8::1"]
announced_address = "198.51.100.7"
port_min = 40000
port_max = 40100
ice_servers = [
  { urls = ["stun:stun.example.com:3478"] },
  { urls = "turn:turn.example.com?transport=tcp", username = "u", credential = "s3cret" },
]

[rooms]
max_participants = 4

[logging]
level = "DEBUG"
format = "console"
""",
    )
    config = load_config(path, env={})
    assert config.server.host == "0.0.0.0"
    assert config.server.port == 9000
    assert config.server.public_url == "https://meet.example.com"
    assert config.server.effective_public_url == "https://meet.example.com"
    assert config.server.shutdown_grace_seconds == 3.0
    assert isinstance(config.server.shutdown_grace_seconds, float)
    assert config.rtc.ice_addresses == ("192.0.2.10", "2001:db8::1")
    assert config.rtc.announced_address == "198.51.100.7"
    assert (config.rtc.port_min, config.rtc.port_max) == (40000, 40100)
    assert config.rtc.ice_servers == (
        IceServer(urls=("stun:stun.example.com:3478",)),
        IceServer(urls=("turn:turn.example.com?transport=tcp",), username="u", credential="s3cret"),
    )
    assert config.rooms.max_participants == 4
    assert config.rooms.max_publications_per_participant == 4  # untouched default
    assert config.logging.level == "debug"
    assert config.logging.format == "console"


def test_env_overrides_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[server]\nport = 9000\nhost = "10.0.0.1"\n[rtc]\nice_addresses = ["10.0.0.1"]\n',
    )
    env = {
        "MEDIASERVER_SERVER_PORT": "9001",
        "MEDIASERVER_ROOMS_MAX_PARTICIPANTS": "4",
        "MEDIASERVER_RTC_ICE_ADDRESSES": "127.0.0.1, ::1",
        "MEDIASERVER_METRICS_ENABLED": "no",
        "MEDIASERVER_ROOMS_EMPTY_TIMEOUT_SECONDS": "2.5",
        "MEDIASERVER_RTC_ICE_SERVERS": json.dumps(
            [{"urls": ["turn:t.example.com:3478"], "username": "a", "credential": "b"}]
        ),
    }
    config = load_config(path, env=env)
    assert config.server.port == 9001
    assert config.server.host == "10.0.0.1"  # from the file, not overridden
    assert config.rooms.max_participants == 4
    assert config.rtc.ice_addresses == ("127.0.0.1", "::1")
    assert config.metrics.enabled is False
    assert config.rooms.empty_timeout_seconds == 2.5
    assert config.rtc.ice_servers == (
        IceServer(urls=("turn:t.example.com:3478",), username="a", credential="b"),
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("1", True), ("YES", True), ("false", False), ("0", False), ("No", False)],
)
def test_env_booleans(raw: str, expected: bool) -> None:
    config = load_config(None, env={"MEDIASERVER_METRICS_ENABLED": raw})
    assert config.metrics.enabled is expected


def test_env_list_as_json_array_and_empty() -> None:
    config = load_config(None, env={"MEDIASERVER_RTC_ICE_ADDRESSES": '["10.1.1.1", "::1"]'})
    assert config.rtc.ice_addresses == ("10.1.1.1", "::1")
    config = load_config(None, env={"MEDIASERVER_RTC_ICE_ADDRESSES": ""})
    assert config.rtc.ice_addresses == ()


def test_effective_public_url_brackets_ipv6_host() -> None:
    assert ServerConfig(host="::1", port=81).effective_public_url == "http://[::1]:81"


# --- errors name the key ---------------------------------------------------------------


def test_unknown_key_in_file(tmp_path: Path) -> None:
    err = error_from_file(tmp_path, "[server]\nhots = 'x'\n")
    assert "unknown key 'server.hots'" in str(err)
    assert str(tmp_path / "config.toml") in str(err)
    assert err.key == "server.hots"


def test_unknown_section_in_file(tmp_path: Path) -> None:
    err = error_from_file(tmp_path, "[foo]\nbar = 1\n")
    assert "unknown section 'foo'" in str(err)


def test_section_that_is_not_a_table(tmp_path: Path) -> None:
    err = error_from_file(tmp_path, "server = 5\n")
    assert str(err).startswith("server: expected table, got integer 5")


def test_unknown_key_in_env_names_variable() -> None:
    err = error_from_env({"MEDIASERVER_SERVER_HOTS": "x"})
    assert "unknown key 'server.hots'" in str(err)
    assert "MEDIASERVER_SERVER_HOTS" in str(err)


def test_unknown_section_in_env_names_variable() -> None:
    err = error_from_env({"MEDIASERVER_FOO_BAR": "x"})
    assert "unknown section 'foo'" in str(err)
    assert "MEDIASERVER_FOO_BAR" in str(err)


def test_env_without_key_names_variable() -> None:
    err = error_from_env({"MEDIASERVER_SERVER": "x"})
    assert "MEDIASERVER_SERVER" in str(err)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[rooms]\nmax_participants = 'ten'\n",
            "rooms.max_participants: expected integer, got string 'ten'",
        ),
        ("[rooms]\nmax_participants = 4.0\n", "rooms.max_participants: expected integer"),
        ("[server]\nport = true\n", "server.port: expected integer, got boolean true"),
        (
            "[server]\nshutdown_grace_seconds = 'soon'\n",
            "server.shutdown_grace_seconds: expected number, got string 'soon'",
        ),
        (
            "[server]\nshutdown_grace_seconds = false\n",
            "server.shutdown_grace_seconds: expected number, got boolean false",
        ),
        ("[server]\nshutdown_grace_seconds = inf\n", "server.shutdown_grace_seconds: expected a"),
        ("[metrics]\nenabled = 'yes'\n", "metrics.enabled: expected boolean, got string 'yes'"),
        ("[metrics]\nenabled = 1\n", "metrics.enabled: expected boolean, got integer 1"),
        ("[server]\nhost = 127\n", "server.host: expected string, got integer 127"),
        (
            "[rtc]\nice_addresses = '127.0.0.1'\n",
            "rtc.ice_addresses: expected array, got string '127.0.0.1'",
        ),
        (
            "[rtc]\nice_addresses = ['127.0.0.1', 5]\n",
            "rtc.ice_addresses[1]: expected string, got integer 5",
        ),
        ("[rtc]\nice_servers = ['stun:x']\n", "rtc.ice_servers[0]: expected table"),
        (
            "[rtc]\nice_servers = [{ urls = [1] }]\n",
            "rtc.ice_servers[0].urls[0]: expected string, got integer 1",
        ),
    ],
)
def test_wrong_type_in_file_names_key(tmp_path: Path, toml: str, message: str) -> None:
    err = error_from_file(tmp_path, toml)
    assert str(err).startswith(message), str(err)
    assert str(tmp_path / "config.toml") in str(err)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"MEDIASERVER_ROOMS_MAX_PARTICIPANTS": "ten"},
            "rooms.max_participants: expected integer, got string 'ten'",
        ),
        ({"MEDIASERVER_ROOMS_MAX_PARTICIPANTS": "4.5"}, "rooms.max_participants: expected integer"),
        (
            {"MEDIASERVER_SERVER_SHUTDOWN_GRACE_SECONDS": "soon"},
            "server.shutdown_grace_seconds: expected number, got string 'soon'",
        ),
        ({"MEDIASERVER_METRICS_ENABLED": "maybe"}, "metrics.enabled: expected boolean"),
        (
            {"MEDIASERVER_RTC_ICE_ADDRESSES": "[1, 2]"},
            "rtc.ice_addresses[0]: expected string, got integer 1",
        ),
        ({"MEDIASERVER_RTC_ICE_SERVERS": "[{"}, "rtc.ice_servers: invalid JSON"),
        ({"MEDIASERVER_RTC_ICE_SERVERS": "stun:x"}, "rtc.ice_servers: expected a JSON array"),
        ({"MEDIASERVER_RTC_ICE_SERVERS": '{"urls": []}'}, "rtc.ice_servers: expected"),
        ({"MEDIASERVER_SERVER_PORT": "0"}, "server.port: must be between 1 and 65535, got 0"),
    ],
)
def test_bad_env_value_names_key_and_variable(env: dict[str, str], message: str) -> None:
    err = error_from_env(env)
    assert str(err).startswith(message), str(err)
    (name,) = env
    assert name in str(err)


def test_bool_rejected_for_int() -> None:
    with pytest.raises(ConfigError, match=r"^server\.port: expected integer, got boolean true"):
        ServerConfig(port=True)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[server]\nport = 0\n", "server.port: must be between 1 and 65535, got 0"),
        ("[server]\nport = 65536\n", "server.port: must be between 1 and 65535"),
        ("[server]\nhost = ''\n", "server.host: must not be empty"),
        ("[server]\nshutdown_grace_seconds = 0\n", "server.shutdown_grace_seconds: must be"),
        ("[server]\nshutdown_grace_seconds = 301\n", "server.shutdown_grace_seconds: must be"),
        (
            "[server]\npublic_url = 'meet.example.com'\n",
            "server.public_url: must start with http:// or https://",
        ),
        ("[rooms]\nmax_participants = 0\n", "rooms.max_participants: must be between 1 and 1000"),
        ("[rooms]\nmax_participants = 1001\n", "rooms.max_participants: must be between"),
        ("[rooms]\nempty_timeout_seconds = -1\n", "rooms.empty_timeout_seconds: must be >= 0"),
        (
            "[rooms]\nmax_publications_per_participant = 17\n",
            "rooms.max_publications_per_participant: must be between 1 and 16",
        ),
        ("[logging]\nlevel = 'verbose'\n", "logging.level: must be one of debug, info"),
        ("[logging]\nformat = 'xml'\n", "logging.format: must be one of json, console"),
        ("[metrics]\npath = 'metrics'\n", "metrics.path: must start with '/'"),
        (
            "[signalling]\nmax_message_bytes = 1023\n",
            "signalling.max_message_bytes: must be between 1024 and 1048576",
        ),
        (
            "[signalling]\nmax_message_bytes = 1048577\n",
            "signalling.max_message_bytes: must be between",
        ),
        (
            "[signalling]\njoin_timeout_seconds = 0\n",
            "signalling.join_timeout_seconds: must be greater than 0",
        ),
        ("[state]\ndata_dir = ''\n", "state.data_dir: must not be empty"),
        ("[signalling]\nmax_sdp_mlines = 0\n", "signalling.max_sdp_mlines: must be between"),
        ("[signalling]\nmessage_burst = 0\n", "signalling.message_burst: must be 1..100000"),
        ("[signalling]\nmessages_per_second = 0\n", "signalling.messages_per_second: must"),
        ("[signalling]\nmax_connections_per_address = -1\n", "signalling.max_connections_"),
        ("[signalling]\nmax_concurrent_sdp = 0\n", "signalling.max_concurrent_sdp: must"),
        ("[signalling]\npublishes_per_minute = 0\n", "signalling.publishes_per_minute: must"),
        ("[metrics]\nlisten = '9090'\n", "metrics.listen: expected host:port"),
        ("[metrics]\nlisten = '127.0.0.1:0'\n", "metrics.listen: expected host:port"),
        ("[metrics]\nbearer_token = 'short'\n", "metrics.bearer_token: must be at least 16"),
    ],
)
def test_out_of_range_names_key(tmp_path: Path, toml: str, message: str) -> None:
    err = error_from_file(tmp_path, toml)
    assert str(err).startswith(message), str(err)


def test_range_boundaries_are_inclusive(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            "[server]\nport = 65535\nshutdown_grace_seconds = 300\n"
            "[rooms]\nmax_participants = 1000\nempty_timeout_seconds = 0\n"
            "max_publications_per_participant = 16\n"
            "[signalling]\nmax_message_bytes = 1024\n"
            "[rtc]\nport_min = 1024\nport_max = 1024\n",
        ),
        env={},
    )
    assert config.server.port == 65535
    assert config.rtc.port_min == config.rtc.port_max == 1024


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[rtc]\nice_addresses = ['127.0.0.1', 'localhost']\n",
            "rtc.ice_addresses[1]: not a valid IP address: 'localhost'",
        ),
        ("[rtc]\nice_addresses = ['0.0.0.0']\n", "rtc.ice_addresses[0]: must be a specific"),
        (
            "[rtc]\nannounced_address = '203.0.113.999'\n",
            "rtc.announced_address: not a valid IP address: '203.0.113.999'",
        ),
    ],
)
def test_bad_ip_names_key(tmp_path: Path, toml: str, message: str) -> None:
    err = error_from_file(tmp_path, toml)
    assert str(err).startswith(message), str(err)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[rtc]\nice_servers = [{ urls = ['http://stun.example.com'] }]\n",
            "rtc.ice_servers[0].urls[0]: must start with stun:, stuns:, turn: or turns:",
        ),
        (
            "[rtc]\nice_servers = [{ urls = ['stun:a'] }, { urls = ['stun:b', 'stun'] }]\n",
            "rtc.ice_servers[1].urls[1]: must start with stun:",
        ),
        ("[rtc]\nice_servers = [{ urls = ['stun:'] }]\n", "rtc.ice_servers[0].urls[0]: malformed"),
        (
            "[rtc]\nice_servers = [{ urls = ['stun:h:70000'] }]\n",
            "rtc.ice_servers[0].urls[0]: port must be between 1 and 65535",
        ),
        ("[rtc]\nice_servers = [{ urls = [] }]\n", "rtc.ice_servers[0].urls: must contain"),
        ("[rtc]\nice_servers = [{ username = 'u' }]\n", "rtc.ice_servers[0].urls: required key"),
        (
            "[rtc]\nice_servers = [{ urls = ['stun:h'], password = 'x' }]\n",
            "unknown key 'rtc.ice_servers[0].password'",
        ),
        (
            "[rtc]\nice_servers = [{ urls = ['turn:h'], credential = 'c' }]\n",
            "rtc.ice_servers[0].username: required for turn:/turns: URLs",
        ),
        (
            "[rtc]\nice_servers = [{ urls = ['turns:h'], username = 'u' }]\n",
            "rtc.ice_servers[0].credential: required for turn:/turns: URLs",
        ),
    ],
)
def test_bad_ice_server_names_key(tmp_path: Path, toml: str, message: str) -> None:
    err = error_from_file(tmp_path, toml)
    assert str(err).startswith(message), str(err)


def test_unsupported_backend(tmp_path: Path) -> None:
    err = error_from_file(tmp_path, "[state]\nbackend = 'etcd'\n")
    assert str(err).startswith(
        "state.backend: unsupported backend 'etcd' (supported: sqlite, memory, redis)"
    )
    err = error_from_env({"MEDIASERVER_STATE_BACKEND": "x"})
    assert str(err).startswith("state.backend: unsupported backend 'x'")


@pytest.mark.parametrize("path", ["/ws", "/healthz", "/v1/metrics", "/j/x", "/"])
def test_metrics_path_must_not_collide_with_routes(tmp_path: Path, path: str) -> None:
    err = error_from_file(tmp_path, f"[metrics]\npath = '{path}'\n")
    assert str(err).startswith("metrics.path:")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[rtc]\nport_min = 40000\n", "rtc.port_max: must be set together with rtc.port_min"),
        ("[rtc]\nport_max = 40000\n", "rtc.port_min: must be set together with rtc.port_max"),
        ("[rtc]\nport_min = 80\nport_max = 90\n", "rtc.port_min: must be 0 (ephemeral) or"),
        ("[rtc]\nport_min = 40000\nport_max = 70000\n", "rtc.port_max: must be 0 (ephemeral)"),
        ("[rtc]\nport_min = 40001\nport_max = 40000\n", "rtc.port_max: must be >= rtc.port_min"),
    ],
)
def test_rtc_port_range(tmp_path: Path, toml: str, message: str) -> None:
    err = error_from_file(tmp_path, toml)
    assert str(err).startswith(message), str(err)


def test_port_range_may_be_completed_by_env(tmp_path: Path) -> None:
    path = write(tmp_path, "[rtc]\nport_min = 40000\n")
    config = load_config(path, env={"MEDIASERVER_RTC_PORT_MAX": "40010"})
    assert (config.rtc.port_min, config.rtc.port_max) == (40000, 40010)


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    err = error_from_file(tmp_path, "[server]\nhost = '127.0.0.1'\nport = \n")
    assert str(tmp_path / "config.toml") in str(err)
    assert "line 3" in str(err)


def test_missing_file_names_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(missing, env={})
    assert "not found" in str(info.value)
    assert str(missing) in str(info.value)


def test_value_error_reports_env_origin_over_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 9000\n")
    err = error_from_file(tmp_path, "[server]\nport = 9000\n", env={"MEDIASERVER_SERVER_PORT": "0"})
    assert "MEDIASERVER_SERVER_PORT" in str(err)
    assert str(path) not in str(err)


# --- direct construction and serialisation ----------------------------------------------


def test_dataclasses_are_frozen_and_validate_on_construction() -> None:
    config = Config()
    with pytest.raises(AttributeError):
        config.server.port = 1  # type: ignore[misc]
    with pytest.raises(ConfigError, match=r"^rtc\.ice_addresses\[0\]: not a valid IP"):
        RtcConfig(ice_addresses=("nope",))
    with pytest.raises(ConfigError, match=r"^urls\[0\]: must start with stun:"):
        IceServer(urls=("http://x",))


def test_config_to_dict_masks_secrets_and_is_json(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[rtc]\nice_servers = [\n"
        "  { urls = ['turn:t.example.com'], username = 'alice', credential = 'hunter2' },\n"
        "  { urls = ['stun:s.example.com'] },\n"
        "]\n",
    )
    config = load_config(path, env={})
    data = config_to_dict(config)
    text = json.dumps(data)
    assert "hunter2" not in text
    servers = data["rtc"]["ice_servers"]
    assert servers[0] == {
        "urls": ["turn:t.example.com"],
        "username": "alice",
        "credential": "***",
    }
    assert servers[1]["credential"] == ""
    assert data["server"] == {
        "host": "127.0.0.1",
        "port": 8080,
        "public_url": "",
        "shutdown_grace_seconds": 10.0,
        "trusted_proxies": [],
    }
    # The original object is untouched.
    assert config.rtc.ice_servers[0].credential == "hunter2"


def test_secret_not_echoed_in_type_error(tmp_path: Path) -> None:
    err = error_from_file(
        tmp_path,
        "[rtc]\nice_servers = [{ urls = ['turn:h'], username = 'u', credential = 98765 }]\n",
    )
    assert str(err).startswith("rtc.ice_servers[0].credential: expected string, got integer")
    assert "98765" not in str(err)
