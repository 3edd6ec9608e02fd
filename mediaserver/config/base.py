"""The machinery every config section shares: :class:`ConfigError`, the strict type
check of a field's value, building a section from its TOML table, and :class:`_Validated`,
the base of the section dataclasses (type check, then the section's own range checks)."""

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar, get_args, get_origin

_T = TypeVar("_T")


class ConfigError(Exception):
    """Invalid configuration.

    ``str(error)`` is the full message; ``key`` is the dotted path of the offending
    setting when there is one (``None`` for file-level problems).
    """

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.key = key


def _error(key: str, detail: str) -> ConfigError:
    return ConfigError(f"{key}: {detail}", key=key)


def _describe(value: object, *, secret: bool = False) -> str:
    """Human description of a raw value for error messages ("string 'ten'")."""
    if isinstance(value, bool):
        kind, text = "boolean", "true" if value else "false"
    elif isinstance(value, int):
        kind, text = "integer", str(value)
    elif isinstance(value, float):
        kind, text = "float", repr(value)
    elif isinstance(value, str):
        kind = "string"
        text = repr(value) if len(value) <= 60 else repr(value[:60]) + "..."
    elif isinstance(value, list | tuple):
        return "array"
    elif isinstance(value, dict):
        return "table"
    elif value is None:
        return "null"
    else:
        return type(value).__name__
    return kind if secret else f"{kind} {text}"


def _check(value: object, tp: object, key: str, *, secret: bool = False) -> object:
    """Strictly type check ``value`` against a field type; return the normalised value."""
    expected: str
    if tp is bool:
        if isinstance(value, bool):
            return value
        expected = "boolean"
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        expected = "integer"
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
            if not math.isfinite(number):
                raise _error(key, f"expected a finite number, got {_describe(value)}")
            return number
        expected = "number"
    elif tp is str:
        if isinstance(value, str):
            return value
        expected = "string"
    elif get_origin(tp) is tuple:
        item_tp = get_args(tp)[0]
        if isinstance(value, list | tuple):
            return tuple(
                _check(item, item_tp, f"{key}[{index}]", secret=secret)
                for index, item in enumerate(value)
            )
        expected = "array"
    elif isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, dict):
            return _build(tp, value, key)
        expected = "table"
    else:  # pragma: no cover - programming error in this module
        raise TypeError(f"unsupported config field type {tp!r}")
    raise _error(key, f"expected {expected}, got {_describe(value, secret=secret)}")


def _build(cls: type[_T], data: Mapping[str, object], key: str) -> _T:
    """Construct dataclass ``cls`` from a table found at dotted path ``key``."""
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for name in data:
        if name not in known:
            if key:
                raise ConfigError(f"unknown key '{key}.{name}'", key=f"{key}.{name}")
            raise ConfigError(f"unknown section {name!r}", key=name)
    for name, fld in known.items():
        missing = fld.default is dataclasses.MISSING
        if missing and fld.default_factory is dataclasses.MISSING and name not in data:
            raise _error(f"{key}.{name}" if key else name, "required key missing")
    try:
        return cls(**data)
    except ConfigError as exc:
        # Classes without a fixed place in the tree (IceServer) report keys relative to
        # themselves; put them under the path they were found at.
        if getattr(cls, "_key_prefix", "") or not key or exc.key is None:
            raise
        raise ConfigError(f"{key}.{exc.message}", key=f"{key}.{exc.key}") from None


class _Validated:
    """Base for config dataclasses: strict type check, then per-class range checks."""

    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]
    _key_prefix: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for fld in dataclasses.fields(self):
            value = getattr(self, fld.name)
            secret = bool(fld.metadata.get("secret", False))
            checked = _check(value, fld.type, self._key(fld.name), secret=secret)
            if checked is not value:
                object.__setattr__(self, fld.name, checked)
        self._validate()

    def _key(self, name: str) -> str:
        return f"{self._key_prefix}.{name}" if self._key_prefix else name

    def _set(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)

    def _range(
        self, name: str, value: float, low: float | None, high: float | None, text: str
    ) -> None:
        if (low is not None and value < low) or (high is not None and value > high):
            raise _error(self._key(name), f"must be {text}, got {value!r}")

    def _choice(self, name: str, value: str, allowed: tuple[str, ...]) -> str:
        lowered = value.lower()
        if lowered not in allowed:
            raise _error(self._key(name), f"must be one of {', '.join(allowed)}, got {value!r}")
        return lowered

    def _validate(self) -> None:
        """Range / semantic checks; types are already checked."""
