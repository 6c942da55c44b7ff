"""A user's config file (JSON or TOML) merged over a preset, so that a new model size needs no code.

The file holds the fields to change, nested as in the config (`[transformer]` / `"transformer": {...}` for a
prior's transformer); everything it leaves out keeps the preset's value. Unknown fields are refused with the
closest known ones: a typo must not silently train the preset.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .fileio import read_utf8

ConfigSource = str | os.PathLike | Mapping[str, Any]


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """The fields of a `.toml` file, or of a JSON file (any other name)."""
    path = Path(path)
    text = read_utf8(path, "config file")
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        kind = "TOML" if path.suffix.lower() == ".toml" else "JSON (name it .toml for TOML)"
        raise ConfigError(f"{path}: not valid {kind} ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file holds an object of fields, not {type(data).__name__}")
    return data


def config_fields(source: ConfigSource | None) -> tuple[dict[str, Any], str]:
    """(fields, where they came from) for a path or a mapping; ({}, '') for None."""
    if source is None:
        return {}, ""
    if isinstance(source, Mapping):
        return dict(source), "config"
    return read_config_file(source), str(source)


def merge_config(base: Mapping[str, Any], overrides: Mapping[str, Any], where: str,
                 fixed: Mapping[str, str] | None = None, prefix: str = "") -> dict[str, Any]:
    """`base` with `overrides` laid over it, nested mappings merged field by field. `fixed` names fields that
    come from elsewhere (the data, the level) with the reason, and refuses them."""
    merged = dict(base)
    for key, value in overrides.items():
        name = prefix + key
        if fixed and name in fixed:
            raise ConfigError(f"{where}: '{name}' cannot be set in a config file ({fixed[name]})")
        if key not in base:
            close = difflib.get_close_matches(key, [k for k in base if not (fixed and prefix + k in fixed)], n=3)
            hint = f"; did you mean {', '.join(repr(prefix + c) for c in close)}?" if close else ""
            raise ConfigError(f"{where}: unknown field '{name}'{hint}")
        if isinstance(base[key], Mapping) and isinstance(value, Mapping):
            merged[key] = merge_config(base[key], value, where, fixed, f"{name}.")
        elif isinstance(base[key], Mapping) != isinstance(value, Mapping) and base[key] is not None:
            raise ConfigError(f"{where}: '{name}' must be " + ("a table of fields" if isinstance(base[key], Mapping)
                                                              else f"a value like {base[key]!r}, not a table"))
        else:
            merged[key] = value
    return merged


def differences(saved: Mapping[str, Any], requested: Mapping[str, Any], prefix: str = "") -> list[str]:
    """'field: saved → requested' for every field that differs (nested fields dotted)."""
    found = []
    for key in sorted(set(saved) | set(requested)):
        a, b = saved.get(key), requested.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            found += differences(a, b, f"{prefix}{key}.")
        elif _plain(a) != _plain(b):
            found.append(f"{prefix}{key}: {a!r} → {b!r}")
    return found


def _plain(value: Any) -> Any:
    """Lists and tuples compare equal (JSON has no tuples)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def check_fields(config: Any, what: str, positive: tuple[str, ...] = ()) -> None:
    """Every field of a config dataclass of its annotated type (ints are not bools, numbers are finite; a nested
    config or tuple is checked inside), and the `positive` ones above zero: a config read from a file of the wrong
    shape is refused by name here, not as a traceback deep in a model."""
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if not _is(value, hints[field.name]):
            raise ConfigError(f"{what}: {field.name} must be {_name(hints[field.name])}, got {value!r}")
        if field.name in positive and value is not None and not value > 0:
            raise ConfigError(f"{what}: {field.name} must be positive, got {value!r}")


def _is(value: Any, kind: Any) -> bool:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return any(_is(value, arg) for arg in args)
    if kind is type(None):
        return value is None
    if origin in (tuple, list):
        if not isinstance(value, (tuple, list)):
            return False
        inner = args[:1] if len(args) == 2 and args[1] is Ellipsis else args
        return all(_is(v, inner[0] if len(inner) == 1 else inner[i]) for i, v in enumerate(value)) \
            if inner and (len(inner) == 1 or len(inner) == len(value)) else not inner
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if isinstance(kind, type):
        return isinstance(value, kind)
    return True  # an annotation this checker does not know: the config's own checks apply


def _name(kind: Any) -> str:
    return getattr(kind, "__name__", None) or str(kind).replace("typing.", "")
