"""Strict construction of frozen config dataclasses from plain dicts (YAML, ROS parameters, CLI).

Unknown keys and wrong types are errors that name the key path and the value, so a typo in a YAML
file stops the program at start-up instead of silently falling back to a default.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Mapping, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type or out of range."""


def _check_type(value: Any, annotation: Any, key: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in args:
            try:
                return _check_type(value, option, key)
            except ConfigError as exc:
                errors.append(str(exc))
        concrete = [option for option in args if option is not type(None)]
        if value is not None and len(concrete) == 1:  # X | None given an X: say what is wrong with it
            raise ConfigError(errors[args.index(concrete[0])])
        raise ConfigError(f"{key}: {value!r} matches none of {annotation}")
    if annotation is type(None):
        if value is None:
            return None
        raise ConfigError(f"{key}: expected null, got {value!r}")
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return from_dict(annotation, value, prefix=key)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{key}: expected {len(args)} items, got {len(value)}")
            return tuple(_check_type(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item_type = args[0] if args else Any
        items = [_check_type(v, item_type, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or annotation is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; every key must be a field, every value of its type."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix or cls.__name__}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f" in {prefix}" if prefix else ""
        raise ConfigError(
            f"unknown config key{where}: {', '.join(repr(k) for k in unknown)} "
            f"(known: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _check_type(value, hints[name], key)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        if prefix and not str(exc).startswith(prefix):
            raise ConfigError(f"{prefix}.{exc}") from None
        raise


def to_dict(obj: Any) -> dict:
    """A plain (YAML/JSON-able) dict of a config dataclass, tuples as lists."""
    def convert(value):
        if dataclasses.is_dataclass(value):
            return {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        return value
    return convert(obj)


def merge_overrides(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict:
    """Deep-merge ``overrides`` (dotted keys allowed: ``model.hidden_sizes``) into ``base``."""
    merged = _deep_copy(base)
    for dotted, value in overrides.items():
        node = merged
        parts = dotted.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return merged


def _deep_copy(data: Mapping[str, Any]) -> dict:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def require(condition: bool, key: str, value: Any, expectation: str) -> None:
    """Raise a ConfigError naming ``key`` and ``value`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(f"{key}: {value!r} is invalid, expected {expectation}")
