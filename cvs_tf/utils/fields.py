"""Type checks of JSON files cvs_tf reads back (export.json, index.json, tune studies and search spaces): one-line errors naming the file and field."""

from __future__ import annotations

import math
from pathlib import Path

#: JSON type names accepted by :meth:`Fields.get`
KINDS = ("null", "boolean", "integer", "number", "string", "array", "object")


def json_kind(value) -> str:
    """JSON type name of a decoded value, for messages."""
    for kind, types in (("null", type(None)), ("boolean", bool), ("number", (int, float)), ("string", str),
                        ("array", list), ("object", dict)):
        if isinstance(value, types):
            return kind
    return type(value).__name__


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """An int or a finite float (not a bool)."""
    return is_int(value) or (isinstance(value, float) and math.isfinite(value))


def short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _matches(value, kind: str) -> bool:
    return {"null": value is None, "boolean": isinstance(value, bool), "integer": is_int(value),
            "number": is_number(value), "string": isinstance(value, str), "array": isinstance(value, list),
            "object": isinstance(value, dict)}[kind]


class Fields:
    """A decoded JSON object read from ``path``, with typed access: a wrong field raises ``error``
    with the one-line message ``PATH: FIELD: what is wrong`` (``prefix`` is the dotted path of nested objects)."""

    def __init__(self, path, obj, *, error=ValueError, prefix: str = ""):
        self.path, self.error, self.prefix = Path(path), error, prefix
        if not isinstance(obj, dict):
            self.fail("", f"must be a JSON object, got {json_kind(obj)}")
        self.obj = obj

    def name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix and key else (self.prefix or key)

    def fail(self, key: str, msg: str):
        where = self.name(key)
        raise self.error(f"{self.path}: {where + ': ' if where else ''}{msg}")

    def get(self, key: str, *kinds: str, required: bool = True, default=None, low=None, high=None, choices=None):
        """``obj[key]`` checked to be one of the JSON ``kinds``, in [low, high] and among ``choices`` when given."""
        if key not in self.obj:
            if required:
                self.fail(key, "missing field")
            return default
        value = self.obj[key]
        if not any(_matches(value, k) for k in kinds):
            self.fail(key, f"must be {' or '.join(kinds)}, got {json_kind(value)} {short(value)}")
        if value is not None and not isinstance(value, bool) and isinstance(value, int | float):
            if (low is not None and value < low) or (high is not None and value > high):
                bounds = f"[{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
                self.fail(key, f"must be in {bounds}, got {short(value)}")
        if choices is not None and value is not None and value not in choices:
            self.fail(key, f"must be one of {', '.join(map(str, choices))}, got {short(value)}")
        return value

    def sub(self, key: str, *, required: bool = True, nullable: bool = False) -> Fields | None:
        """The nested object ``obj[key]`` as :class:`Fields` (None when absent and not required, or null and ``nullable``)."""
        value = self.get(key, "object", *(("null",) if nullable else ()), required=required)
        return None if value is None else Fields(self.path, value, error=self.error, prefix=self.name(key))

    def strings(self, key: str, *, required: bool = True, nullable: bool = False) -> list[str] | None:
        """A list of strings."""
        value = self.get(key, "array", *(("null",) if nullable else ()), required=required)
        if value is not None:
            for i, v in enumerate(value):
                if not isinstance(v, str):
                    self.fail(key, f"must be a list of strings, item {i} is {json_kind(v)} {short(v)}")
        return value


def inside(root, rel, *, where: str, error=ValueError) -> Path:
    """``root / rel`` for a relative path ``rel`` that stays inside ``root`` (no absolute path, no ``..``,
    no symbolic link leading out); ``error`` (one line starting with ``where``) otherwise."""
    if not isinstance(rel, str) or not rel:
        raise error(f"{where}: must be a non-empty relative path, got {json_kind(rel)} {short(rel)}")
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts or rel.startswith("~"):
        raise error(f"{where}: {rel!r} leads outside its folder (only paths inside it are allowed)")
    base = Path(root).resolve()
    target = (Path(root) / p).resolve()
    if target != base and base not in target.parents:
        raise error(f"{where}: {rel!r} leads outside its folder through a symbolic link (to {target})")
    return Path(root) / p
