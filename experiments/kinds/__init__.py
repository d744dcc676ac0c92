"""The experiment-kind registry: what each ``kind`` of config runs, read by spec validation and by dispatch.

A kind is one module in this package that builds a :class:`Kind` and passes it to
:func:`register_kind` (the built-in ones are imported by :mod:`experiments.spec`). Its ``run``
takes a :class:`experiments.context.Context` and returns ``{"markdown", "rows", "record"}``;
the flags say which header lines its results carry and which spec checks apply.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from experiments.errors import SpecError


@dataclass(frozen=True)
class Kind:
    """One experiment kind: its runner and what the loader and the report need to know about it."""

    name: str
    run: Callable  # (Context) -> {"markdown": str, "rows": list[dict], "record": dict}
    trains: bool = True  # the header names the training settings
    evaluates: bool = False  # the header names the test-time protocols and mAP@k
    seeded: bool = True  # results are over seeds (the header lists them)
    figure: bool = False  # writes results/NAME*.png
    thesis_by_variant: bool = False  # the datasets' ``thesis`` keys must name variants
    oracle: bool = False  # offers the label-leaking ``oracle-pairs`` diagnostic protocol (experiments.oracle)
    check: Callable | None = None  # (ExperimentSpec, where) -> None: kind-specific spec checks (SpecError)
    render: Callable | None = None  # (Context, datas, runs) -> outputs: re-render from the recorded runs


_KINDS: dict[str, Kind] = {}


def register_kind(kind: Kind) -> Kind:
    """Add a kind (a second kind of the same name replaces the first); returns it."""
    _KINDS[kind.name] = kind
    return kind


def kind_names() -> tuple[str, ...]:
    """Every registered kind, in registration order."""
    return tuple(_KINDS)


def get_kind(name: str) -> Kind:
    """The kind called ``name``; :class:`SpecError` naming the known kinds otherwise."""
    try:
        return _KINDS[name]
    except KeyError:
        raise SpecError(f"kind must be one of {', '.join(_KINDS)}, got {name!r}") from None


__all__ = ["Kind", "get_kind", "kind_names", "register_kind"]
