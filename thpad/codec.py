"""Strict conversion between frozen config dataclasses and plain dicts (JSON/YAML).

A leaf module that every layer may import: the networks' configs, the params loader and the snapshots' configs
all go through it.

Every config in thpad is a frozen dataclass. ``from_dict`` builds one from a mapping and refuses an
unknown or missing key with a message naming the dotted key, the way minGPT refuses an unknown
override, but typed. ``to_dict`` is the inverse, so ``from_dict(C, to_dict(c)) == c``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A config mapping does not match its dataclass (unknown, missing or mistyped key)."""


def to_dict(cfg: Any) -> dict[str, Any]:
    """Return the config as nested plain dicts, lists and scalars (tuples become lists)."""
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"to_dict needs a dataclass instance, got {type(cfg).__name__}")
    return _plain(dataclasses.asdict(cfg))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], prefix: str = "", require_all: bool = False) -> T:
    """Build dataclass ``cls`` from ``data``; unknown or missing keys raise ``ConfigError``.

    Args:
        cls: a dataclass type; nested dataclass fields are built recursively.
        data: the mapping, e.g. one section of params.yaml.
        prefix: dotted path of ``data`` for error messages (e.g. ``"preprocess."``).
        require_all: every field must be given, even those with a default (params.yaml is complete).
    Returns:
        An instance of ``cls``.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown config key '{prefix}{unknown[0]}' (allowed: {', '.join(sorted(fields))})")
    missing = [n for n, f in fields.items() if n not in data and (require_all or _has_no_default(f))]
    if missing:
        raise ConfigError(f"missing config key '{prefix}{missing[0]}'")
    kwargs = {name: _convert(hints[name], data[name], f"{prefix}{name}", require_all)
              for name in fields if name in data}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:  # a dataclass's own __post_init__ check
        raise ConfigError(f"{prefix.rstrip('.') or cls.__name__}: {err}") from err


def _has_no_default(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _convert(tp: Any, value: Any, key: str, require_all: bool = False) -> Any:
    """Check and convert ``value`` to type ``tp`` (dataclasses, tuples, unions, scalars)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key + ".", require_all)
    if origin in (typing.Union, types.UnionType):
        return _convert_union(typing.get_args(tp), value, key, require_all)
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"config key '{key}': {value!r} is not one of {typing.get_args(tp)}")
        return value
    if origin is tuple:
        return _convert_tuple(typing.get_args(tp), value, key)
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{key}': expected a mapping, got {value!r}")
        return dict(value)
    return _convert_scalar(tp, value, key)


def _convert_union(args: tuple[Any, ...], value: Any, key: str, require_all: bool) -> Any:
    if value is None and type(None) in args:
        return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _convert(arg, value, key, require_all)
        except ConfigError as err:
            errors.append(str(err))
    raise ConfigError(errors[0] if errors else f"config key '{key}': bad value {value!r}")


def _convert_tuple(args: tuple[Any, ...], value: Any, key: str) -> tuple:
    if not isinstance(value, list | tuple):
        raise ConfigError(f"config key '{key}': expected a list, got {value!r}")
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_convert(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
    if len(args) != len(value):
        raise ConfigError(f"config key '{key}': expected {len(args)} items, got {len(value)}")
    return tuple(_convert(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))


def _convert_scalar(tp: Any, value: Any, key: str) -> Any:
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is bool and not isinstance(value, bool):
        raise ConfigError(f"config key '{key}': expected true/false, got {value!r}")
    if tp is int and isinstance(value, bool):
        raise ConfigError(f"config key '{key}': expected an integer, got {value!r}")
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"config key '{key}': expected {tp.__name__}, got {value!r}")
    return value
