"""The strict typed loader of the config dataclasses: JSON values checked against type hints, one-line ``ConfigError``."""

from __future__ import annotations

import dataclasses
import numbers
import types
import typing

__all__ = ["ConfigError", "check_fields", "from_dict", "typed_value"]


class ConfigError(ValueError):
    """A configuration value or file is invalid; the message names the field."""


def _show(value) -> str:
    r = repr(value)
    return r if len(r) <= 60 else r[:57] + "..."


def _union_args(hint):
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return None


def _kind(hint) -> str:
    """How a type reads in an error message."""
    args = _union_args(hint)
    if args is not None:
        parts = [_kind(a) for a in args if a is not type(None)] + (["null"] if type(None) in args else [])
        return ", ".join(parts[:-1]) + " or " + parts[-1] if len(parts) > 1 else parts[0]
    origin = typing.get_origin(hint)
    if origin is list:
        inner = typing.get_args(hint)
        return f"a list of {_plural(inner[0])}" if inner else "a list"
    if origin is tuple:
        inner = typing.get_args(hint)
        if len(inner) == 2 and inner[1] is Ellipsis:
            return f"a list of {_plural(inner[0])}"
        return f"a list of {len(inner)} {_plural(inner[0])}"
    if dataclasses.is_dataclass(hint) or hint is dict or origin is dict:
        return "an object"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(hint, str(hint))


def _plural(hint) -> str:
    k = _kind(hint)
    return {"an integer": "integers", "a number": "numbers", "true or false": "booleans", "a string": "strings",
            "an object": "objects"}.get(k, k.replace("a list of", "lists of", 1))


def _fits(hint, value) -> bool:
    """Whether ``value`` has the outer shape of ``hint`` (the inner items are checked by :func:`_convert`)."""
    args = _union_args(hint)
    if args is not None:
        return any(_fits(a, value) for a in args)
    if hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        return isinstance(value, (list, tuple))
    if dataclasses.is_dataclass(hint) or hint is dict or origin is dict:
        return isinstance(value, dict)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return True


def _convert(hint, value, where: str):
    """``value`` checked against the type hint and converted (JSON lists to tuples, ints to floats)."""
    if not _fits(hint, value):
        raise ConfigError(f"{where}: expected {_kind(hint)}, got {_show(value)}")
    args = _union_args(hint)
    if args is not None:
        return _convert(next(a for a in args if _fits(a, value)), value, where)
    origin, inner = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if hint is dict or origin is dict:
        if len(inner) == 2:
            return {_convert(inner[0], k, f"{where} key {_show(k)}"): _convert(inner[1], v, f"{where}.{k}")
                    for k, v in value.items()}
        return dict(value)
    if origin is list:
        return [_convert(inner[0], v, f"{where}[{i}]") for i, v in enumerate(value)] if inner else list(value)
    if origin is tuple:
        if len(inner) == 2 and inner[1] is Ellipsis:
            return tuple(_convert(inner[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(inner):
            raise ConfigError(f"{where}: expected {_kind(hint)}, got {len(value)} value(s)")
        return tuple(_convert(h, v, f"{where}[{i}]") for i, (h, v) in enumerate(zip(inner, value)))
    if hint is int:
        return int(value)
    if hint is float:
        return float(value)
    return value


def typed_value(hint, value, where: str):
    """``value`` checked against a type hint and converted; ``ConfigError`` ``"<where>: expected ..."`` otherwise.

    Handles what the config dataclasses use: ``int`` (not ``bool``), ``float`` (ints accepted),
    ``bool``, ``str``, ``list[...]``, fixed or ``...`` tuples (JSON lists), ``dict``/``dict[K, V]``,
    unions with ``None``, and nested dataclasses (objects with no unknown field).
    """
    return _convert(hint, value, where)


def from_dict(cls, data, where: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object, got {_show(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(str(k) for k in data if k not in fields)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(fields))})")
    missing = [n for n, f in fields.items() if n not in data
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where}: missing field(s) {', '.join(missing)}")
    return cls(**{key: _convert(hints[key], value, f"{where}.{key}") for key, value in data.items()})


def check_fields(obj, where: str) -> None:
    """Type-check a dataclass instance in place (values set in Python, or flags), normalising like the loader."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, hint, name = getattr(obj, f.name), hints[f.name], f"{where}.{f.name}"
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, hint):
                raise ConfigError(f"{name}: expected a {hint.__name__}, got {_show(value)}")
            check_fields(value, name)
        else:
            setattr(obj, f.name, _convert(hint, value, name))
