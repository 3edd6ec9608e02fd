"""The whole configuration (:class:`Config`), how it is loaded, and how it is shown.

Layers, later wins: built-in defaults -> TOML file (optional) -> ``MEDIASERVER_*``
environment variables. Every value is type checked strictly (a boolean is not an
integer, an integer is accepted where a float is expected) and range checked; every
error is a :class:`ConfigError` whose message names the offending key by its full
dotted path, e.g. ``rooms.max_participants: expected integer, got string 'ten'``,
followed by where the value came from.

Environment variables are named ``MEDIASERVER_<SECTION>_<KEY>`` in upper case, e.g.
``MEDIASERVER_SERVER_PORT=9000``. Section names contain no underscore, so the first
token after the prefix is the section. ``MEDIASERVER_CONFIG`` is reserved for the
config file path (read by the CLI, not by :func:`load_config`) and is ignored here, like
``MEDIASERVER_PURE_PYTHON`` (read by mediaserver.sfu.fastpath at import).
"""

import dataclasses
import json
import os
import re
import tomllib
from collections.abc import Mapping
from typing import Any, get_args, get_origin

from .accounts import AccountsConfig
from .base import ConfigError, _build, _describe, _error, _Validated
from .linkapi import LinkApiConfig
from .media import RtcConfig, TurnConfig
from .recording import RecordingConfig
from .rooms import RoomsConfig
from .server import LoggingConfig, MetricsConfig, ServerConfig
from .signalling import SignallingConfig
from .state import ClusterConfig, StateConfig

ENV_PREFIX = "MEDIASERVER_"
ENV_CONFIG_PATH = "MEDIASERVER_CONFIG"
#: ``1`` forces the pure-Python forwarding path (mediaserver.sfu.fastpath); not a setting.
ENV_PURE_PYTHON = "MEDIASERVER_PURE_PYTHON"
#: ``0``: libsrtp protects the RTP of AES-GCM connections too (not a setting either).
ENV_NATIVE_SRTP = "MEDIASERVER_NATIVE_SRTP"
SECRET_MASK = "***"

_INT_RE = re.compile(r"[+-]?[0-9]+")
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


@dataclasses.dataclass(frozen=True)
class Config(_Validated):
    """The whole configuration; one attribute per TOML section."""

    server: ServerConfig = dataclasses.field(default_factory=ServerConfig)
    rtc: RtcConfig = dataclasses.field(default_factory=RtcConfig)
    turn: TurnConfig = dataclasses.field(default_factory=TurnConfig)
    rooms: RoomsConfig = dataclasses.field(default_factory=RoomsConfig)
    state: StateConfig = dataclasses.field(default_factory=StateConfig)
    logging: LoggingConfig = dataclasses.field(default_factory=LoggingConfig)
    metrics: MetricsConfig = dataclasses.field(default_factory=MetricsConfig)
    signalling: SignallingConfig = dataclasses.field(default_factory=SignallingConfig)
    linkapi: LinkApiConfig = dataclasses.field(default_factory=LinkApiConfig)
    cluster: ClusterConfig = dataclasses.field(default_factory=ClusterConfig)
    accounts: AccountsConfig = dataclasses.field(default_factory=AccountsConfig)
    recording: RecordingConfig = dataclasses.field(default_factory=RecordingConfig)

    @property
    def recording_directory(self) -> str:
        return self.recording.directory or os.path.join(self.state.data_dir, "recordings")


def _section_fields(section: str) -> dict[str, dataclasses.Field[Any]] | None:
    for fld in dataclasses.fields(Config):
        section_type = fld.type
        if fld.name == section and isinstance(section_type, type):
            return {f.name: f for f in dataclasses.fields(section_type)}
    return None


def _read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {name}") from None
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends with "(at line N, column M)".
        raise ConfigError(f"{name}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name}: invalid TOML: not UTF-8 ({exc.reason})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {name}: {exc.strerror or exc}") from None


def _parse_env_value(raw: str, tp: object, key: str, *, secret: bool) -> object:
    """Turn an environment string into a raw value for :func:`_check`."""
    if tp is str:
        return raw
    text = raw.strip()
    if tp is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise _error(
            key, f"expected boolean (true/false/1/0/yes/no), got {_describe(raw, secret=secret)}"
        )
    if tp is int:
        if _INT_RE.fullmatch(text):
            return int(text)
        raise _error(key, f"expected integer, got {_describe(raw, secret=secret)}")
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise _error(key, f"expected number, got {_describe(raw, secret=secret)}") from None
    if get_origin(tp) is tuple:
        item_tp = get_args(tp)[0]
        if text.startswith("["):
            try:
                value: object = json.loads(text)
            except json.JSONDecodeError as exc:
                raise _error(key, f"invalid JSON array: {exc}") from None
            return value
        if item_tp is str:
            return [part.strip() for part in text.split(",") if part.strip()]
        if not text:
            return []
        # Not echoed: it may contain credentials.
        raise _error(key, "expected a JSON array of objects (value starting with '[')")
    raise TypeError(f"unsupported config field type {tp!r}")  # pragma: no cover


def _apply_env(env: Mapping[str, str], raw: dict[str, Any], origins: dict[str, str]) -> None:
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name in (
            ENV_CONFIG_PATH,
            ENV_PURE_PYTHON,
            ENV_NATIVE_SRTP,
        ):
            continue
        where = f"from environment variable {name}"
        section_token, sep, key_token = name[len(ENV_PREFIX) :].partition("_")
        section, key = section_token.lower(), key_token.lower()
        if not section or not sep or not key:
            raise ConfigError(
                f"environment variable {name} does not name a setting "
                f"(expected {ENV_PREFIX}<SECTION>_<KEY>)"
            )
        fields = _section_fields(section)
        if fields is None:
            raise ConfigError(f"unknown section {section!r} ({where})", key=section)
        dotted = f"{section}.{key}"
        fld = fields.get(key)
        if fld is None:
            raise ConfigError(f"unknown key '{dotted}' ({where})", key=dotted)
        secret = bool(fld.metadata.get("secret", False))
        try:
            value = _parse_env_value(env[name], fld.type, dotted, secret=secret)
        except ConfigError as exc:
            raise ConfigError(f"{exc.message} ({where})", key=exc.key) from None
        table = raw.setdefault(section, {})
        table[key] = value
        origins[dotted] = where


def _origin(key: str | None, origins: Mapping[str, str]) -> str | None:
    if key is None:
        return None
    if key in origins:
        return origins[key]
    # "rtc.ice_servers[0].urls" came from wherever "rtc.ice_servers" came from.
    best: str | None = None
    for candidate in origins:
        if "." in candidate and key.startswith((candidate + ".", candidate + "[")):
            if best is None or len(candidate) > len(best):
                best = candidate
    return origins[best] if best is not None else None


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Load configuration: defaults, then the TOML file at ``path``, then ``env``.

    ``env`` defaults to ``os.environ``. Raises :class:`ConfigError` on any problem.
    """
    if env is None:
        env = os.environ
    raw: dict[str, Any] = {}
    origins: dict[str, str] = {}
    if path is not None:
        raw = _read_toml(path)
        where = f"in {os.fspath(path)}"
        for section, table in raw.items():
            origins[section] = where
            if _section_fields(section) is None:
                raise ConfigError(f"unknown section {section!r} ({where})", key=section)
            if not isinstance(table, dict):
                raise ConfigError(
                    f"{section}: expected table, got {_describe(table)} ({where})", key=section
                )
            for key in table:
                origins[f"{section}.{key}"] = where
    _apply_env(env, raw, origins)
    try:
        return _build(Config, raw, "")
    except ConfigError as exc:
        origin = _origin(exc.key, origins)
        if origin is None:
            raise
        raise ConfigError(f"{exc.message} ({origin})", key=exc.key) from None


def _plain(obj: object) -> object:
    if isinstance(obj, _Validated):
        return _dataclass_dict(obj)
    if isinstance(obj, list | tuple):
        return [_plain(item) for item in obj]
    return obj


def _dataclass_dict(obj: _Validated) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for fld in dataclasses.fields(obj):
        value = getattr(obj, fld.name)
        if fld.metadata.get("secret", False) and value:
            out[fld.name] = SECRET_MASK
        else:
            out[fld.name] = _plain(value)
    return out


def config_to_dict(config: Config) -> dict[str, Any]:
    """JSON-serialisable dict of ``config`` (same shape as the TOML file).

    Secrets (ICE server credentials) are replaced by ``"***"`` when non-empty.
    """
    return _dataclass_dict(config)
