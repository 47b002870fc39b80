"""Typed settings from defaults, a TOML file, the environment and overrides (in that order).

Shared by the coordinator and the agent: a settings class is a dataclass whose fields carry
their defaults; nested dataclasses are TOML tables. Every bad value fails naming its field.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from cluster_core.errors import ConfigError

T = TypeVar("T")


def load_settings(
    cls: type[T],
    *,
    path: str | os.PathLike | None,
    default_path: str,
    env_prefix: str,
    environ: typing.Mapping[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> T:
    """Defaults, then the TOML file, then ``<env_prefix><FIELD>`` variables, then overrides.

    An explicitly given file must exist; the default file is read only when present.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    file = Path(path or environ.get(f"{env_prefix}CONFIG", default_path))
    if path or environ.get(f"{env_prefix}CONFIG") or file.exists():
        try:
            values.update(tomllib.loads(file.read_text()))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {file}: {exc}") from exc
    names = {f.name for f in dataclasses.fields(cls)}
    for key, raw in environ.items():
        name = key[len(env_prefix) :].lower()
        if key.startswith(env_prefix) and name in names:
            values[name] = raw
    values.update(overrides or {})
    return from_mapping(cls, values)


def from_mapping(cls: type[T], values: dict[str, Any], prefix: str = "") -> T:
    """Build ``cls`` from plain values, converting types; unknown keys are errors."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(prefix + u for u in unknown)}")
    kwargs = {name: _coerce(prefix + name, hints[name], raw) for name, raw in values.items()}
    try:
        settings = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc
    validate = getattr(settings, "validate", None)
    if validate:
        validate()
    return settings


def _coerce(name: str, kind: Any, raw: Any) -> Any:
    """Turn file or environment values into the field's type, with an error naming the field."""
    origin = typing.get_origin(kind) or kind
    args = typing.get_args(kind)
    try:
        if dataclasses.is_dataclass(kind):
            if isinstance(raw, kind):
                return raw
            if not isinstance(raw, dict):
                raise TypeError("expected a table")
            return from_mapping(kind, raw, prefix=f"{name}.")
        if origin in (typing.Union, types.UnionType):  # X | None
            return None if raw is None else _coerce(name, args[0], raw)
        if origin is list:
            if isinstance(raw, str):
                raw = [item.strip() for item in raw.split(",") if item.strip()]
            if not isinstance(raw, list):
                raise TypeError("expected a list")
            return [_coerce(name, args[0], item) for item in raw] if args else raw
        if origin is dict:
            if isinstance(raw, str):
                pairs = (item.split("=", 1) for item in raw.split(",") if item.strip())
                raw = {key.strip(): value.strip() for key, value in pairs}
            if not isinstance(raw, dict):
                raise TypeError("expected a table")
            return raw
        return _scalar(kind, raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name}: {exc}") from exc


def _scalar(kind: Any, raw: Any) -> Any:
    if kind is bool:
        if isinstance(raw, str):
            if raw.lower() not in {"1", "0", "true", "false", "yes", "no"}:
                raise ValueError(f"not a boolean: {raw!r}")
            return raw.lower() in {"1", "true", "yes"}
        if not isinstance(raw, bool):
            raise TypeError("expected true or false")
        return raw
    if kind in (int, float):
        if isinstance(raw, bool):
            raise TypeError("expected a number")
        return kind(raw)
    if kind is str and not isinstance(raw, str):
        raise TypeError("expected a string")
    return raw
