"""Typed configuration for mediaserver: one frozen dataclass per TOML section.

Layers, later wins: built-in defaults -> TOML file (optional) -> ``MEDIASERVER_*``
environment variables (see :mod:`.load`). Every value is strictly type and range
checked; every error is a :class:`ConfigError` naming the key by its dotted path.

Modules: ``base`` (ConfigError, the type check, the sections' base class), ``server``
([server], [logging], [metrics]), ``media`` ([rtc], [turn]), ``rooms``, ``signalling``,
``state`` ([state], [cluster]), ``linkapi``, ``accounts``, ``recording``, and ``load``
(the whole :class:`Config`, ``load_config``, ``config_to_dict``).
"""

from .accounts import AccountsConfig
from .base import ConfigError
from .linkapi import LinkApiConfig
from .load import (
    ENV_CONFIG_PATH,
    ENV_NATIVE_SRTP,
    ENV_PREFIX,
    ENV_PURE_PYTHON,
    SECRET_MASK,
    Config,
    config_to_dict,
    load_config,
)
from .media import IceServer, RtcConfig, TurnConfig, announced_map
from .recording import RECORDING_POLICIES, RecordingConfig
from .rooms import RoomsConfig
from .server import LOG_FORMATS, LOG_LEVELS, LoggingConfig, MetricsConfig, ServerConfig
from .signalling import SignallingConfig
from .state import SUPPORTED_STATE_BACKENDS, ClusterConfig, StateConfig

__all__ = [
    "ENV_CONFIG_PATH",
    "ENV_NATIVE_SRTP",
    "ENV_PREFIX",
    "ENV_PURE_PYTHON",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "RECORDING_POLICIES",
    "SECRET_MASK",
    "SUPPORTED_STATE_BACKENDS",
    "AccountsConfig",
    "ClusterConfig",
    "Config",
    "ConfigError",
    "IceServer",
    "LinkApiConfig",
    "LoggingConfig",
    "MetricsConfig",
    "RecordingConfig",
    "RoomsConfig",
    "RtcConfig",
    "ServerConfig",
    "SignallingConfig",
    "StateConfig",
    "TurnConfig",
    "announced_map",
    "config_to_dict",
    "load_config",
]
