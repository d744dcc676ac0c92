"""Registry of pair losses: each kind is one batched pure function over the stacked modality pairs of a stage.

A kind is called once per step with the P active pairs (a, b) stacked::

    fn(yx, ex, yy, ey, options) -> {term: (P,) tensor, ..., "total": (P,) tensor}

``yx``/``yy`` are the labels of a and b, (P, B) class ids or (P, B, C) multi-hot rows, ``ex``/``ey``
the (P, B, D) L2-normalised pair embeddings, and ``options`` the model's loss options (the
:class:`cvs_tf.config.LossConfig` fields as a dict: margins, gammas, symmetric_inter, ...). The
function must be pure and XLA-compilable (no Python side effects, no data-dependent ``tf.cond``).
The model names each term ``"{a}__{b}.{term}"`` (``{a}``/``{b}`` in a declared term name are
replaced by the pair's modalities), the mean of ``total`` over the pairs is the top-level term
``total_name``, and ``loss = alpha * classification + beta * mean(total)``; trackers, TensorBoard
tags and the progress line take these names.

A kind also declares its **cost** (:class:`PairCost`): the peak bytes of one stacked pair's call with
its gradient as a function of the batch B and the embedding dimension D. The memory check
(``cvs_tf.training.memory``) and the grouping of a stage's pairs into calls
(``cvs_tf.models.objective.Objective.groups``) ask it; docs/performance.md tabulates the built-in kinds.

A kind registered with ``memory=True`` also takes ``memory=``, a :class:`Memory` of past embeddings
(the cross-batch memory, ``--xbm-size``): its anchors stay the current batch, its candidates are
the current batch and the memory's valid rows (B x (B+N) entries).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from cvs_tf.config import LossConfig

__all__ = ["DEFAULT_PAIR_LOSS", "Memory", "PairCost", "PairLoss", "get_pair_loss", "pair_loss_names", "register_pair_loss"]

DEFAULT_PAIR_LOSS = LossConfig.kind  # the thesis's semi-hard triplet, eq. 3.1.6 (losses/kinds/semihard_triplet.py)

# top-level names the model, the trainer and TensorBoard already give a meaning to
RESERVED_NAMES = ("loss", "classification", "reconstruction", "instance", "lr", "map", "total")


#: the pairs of one call of a kind keep their declared cost under this (Objective.groups). Every call is
#: compiled into its own copy of the kind's graph, so more, smaller groups trade live terms for compiled
#: code: at B = 1024, the 10 pairs of a 5-modality CVS in one call peaked at 3.5 GiB, one pair per call at
#: 5.4 GiB (loss terms with gradient, XLA, CPU; docs/performance.md); 1 GiB gives groups of 4 there.
GROUP_BYTES = 1 << 30


@dataclass(frozen=True)
class PairCost:
    """How the memory of one stacked pair's call (forward and gradient) grows with the batch size B.

    ``bytes(B, D) = cube · B³ + square · B² + row · B · D`` per pair, all sets of B rows: ``square``
    bytes per (anchor, candidate) entry of all the kind's terms together (distances, masks, softmax,
    sort keys and their gradients), ``cube`` per (anchor, candidate, negative) entry for a kind that
    compares through such a cube, ``row`` per embedding value. The order is the highest power of B.
    With a cross-batch memory of N rows the candidates are B + N: ``cube · B(B+N)² + square · B(B+N)
    + row · (B+N) · D``.
    """

    square: float = 0.0
    cube: float = 0.0
    row: float = 0.0

    @property
    def order(self) -> str:
        return "B³" if self.cube else "B²" if self.square else "B"

    def bytes(self, batch: int, pairs: int = 1, dim: int = 0, memory: int = 0) -> int:
        """Peak bytes of ``pairs`` stacked pairs at batch ``batch`` and embedding dimension ``dim``; with a
        cross-batch memory of ``memory`` rows, B anchors against B + N candidates."""
        b, c = int(batch), int(batch) + int(memory)
        return int(pairs * (self.cube * b * c**2 + self.square * b * c + self.row * c * int(dim)))


class Memory(NamedTuple):
    """The cross-batch memory of P stacked pairs (x, y): past labels ``yx``/``yy`` ((P, N) ids or (P, N, C)
    multi-hot), embeddings ``ex``/``ey`` (P, N, D), and ``valid`` (P, N) bool, the rows that take part."""

    yx: Any
    ex: Any
    yy: Any
    ey: Any
    valid: Any

    @classmethod
    def stack(cls, memories) -> Memory:
        """The memories of several pairs stacked along a new leading axis P."""
        import tensorflow as tf

        return cls(*(tf.stack(list(field)) for field in zip(*memories)))

    def side(self, which: str) -> tuple:
        """``(labels, embeddings, valid)`` of side ``"x"`` or ``"y"``."""
        return (self.yx, self.ex, self.valid) if which == "x" else (self.yy, self.ey, self.valid)


@dataclass(frozen=True)
class PairLoss:
    """A registered pair-loss kind: its function, its per-pair term names, the name of its mean total and its cost.

    ``cost`` is a :class:`PairCost`, or a function of the loss options returning one (a kind whose
    terms depend on an option, e.g. ``symmetric_inter``); :meth:`cost_for` resolves it. ``memory``:
    whether ``fn`` takes a cross-batch :class:`Memory` (keyword ``memory``).
    """

    name: str
    fn: Callable[..., Mapping]
    terms: tuple[str, ...]
    total_name: str
    cost: PairCost | Callable[[Mapping], PairCost] = field(default=None, compare=False)
    memory: bool = False

    def cost_for(self, options: Mapping | None = None) -> PairCost:
        """The kind's :class:`PairCost` under the loss ``options``."""
        cost = self.cost(options or {}) if callable(self.cost) else self.cost
        return cost if cost is not None else UNDECLARED_COST

    def term_names(self, a: str, b: str) -> dict[str, str]:
        """Declared term -> its name for the pair (a, b), e.g. ``intra_{a}`` -> ``intra_image``."""
        return {t: t.format(a=a, b=b) for t in self.terms}

    def __call__(self, yx, ex, yy, ey, options: Mapping, memory: Memory | None = None) -> dict:
        """The kind's function (with ``memory`` when given), its returned term names checked against the declared ones."""
        if memory is None:
            out = dict(self.fn(yx, ex, yy, ey, options))
        elif not self.memory:
            raise ValueError(f"pair loss {self.name!r} takes no cross-batch memory (kinds that do: "
                             f"{', '.join(memory_kinds())})")
        else:
            out = dict(self.fn(yx, ex, yy, ey, options, memory=memory))
        if set(out) != {*self.terms, "total"}:
            raise ValueError(f"pair loss {self.name!r} returned terms {sorted(out)}, "
                             f"declared {sorted(self.terms)} plus 'total'")
        return out


#: the cost of a kind that declares none: 256 bytes per (anchor, candidate) entry, about four B² float32
#: matrices with their gradients for each of four terms
UNDECLARED_COST = PairCost(square=256)

_REGISTRY: dict[str, PairLoss] = {}


def _check_name(what: str, name) -> None:
    if not isinstance(name, str) or not name or "." in name or name.startswith("val_") or name in RESERVED_NAMES:
        raise ValueError(f"pair loss {what} must be a non-empty string without '.', not starting with 'val_' "
                         f"and not one of {', '.join(RESERVED_NAMES)}; got {name!r}")


def register_pair_loss(name: str, fn: Callable | None = None, *, terms, total_name: str | None = None,
                       cost: PairCost | Callable[[Mapping], PairCost] | None = None, memory: bool = False,
                       replace: bool = False):
    """Register ``fn`` as the pair loss ``name`` (``LossConfig.kind``); usable as a decorator.

    ``terms``: the per-pair term names ``fn`` returns besides ``"total"`` (``{a}``/``{b}`` stand for the
    pair's modalities); ``total_name``: the top-level name of the mean total (default: ``name``);
    ``cost``: its :class:`PairCost` (or a function of the loss options giving one; default
    :data:`UNDECLARED_COST`, a generous B² bound); ``memory``: ``fn`` takes ``memory=``, a cross-batch
    :class:`Memory` (``--xbm-size``). Registering a taken name raises ``ValueError``
    unless ``replace`` is true. Returns ``fn``.
    """
    if fn is None:
        return lambda f: register_pair_loss(name, f, terms=terms, total_name=total_name, cost=cost, memory=memory,
                                            replace=replace)
    terms = (terms,) if isinstance(terms, str) else tuple(terms)
    total_name = name if total_name is None else total_name
    _check_name("name", name)
    _check_name("total_name", total_name)
    for t in terms:
        _check_name("term", t)
        try:
            t.format(a="a", b="b")
        except (KeyError, IndexError, ValueError):
            raise ValueError(f"pair loss term {t!r}: only {{a}} and {{b}} may be substituted") from None
    if len(set(terms)) != len(terms):
        raise ValueError(f"pair loss {name!r}: repeated term names in {terms}")
    if not callable(fn):
        raise ValueError(f"pair loss {name!r}: fn must be callable, got {fn!r}")
    if cost is not None and not (isinstance(cost, PairCost) or callable(cost)):
        raise ValueError(f"pair loss {name!r}: cost must be a PairCost or a function of the options, got {cost!r}")
    if name in _REGISTRY and not replace and _REGISTRY[name].fn is not fn:
        raise ValueError(f"pair loss {name!r} is already registered (pass replace=True to replace it)")
    _REGISTRY[name] = PairLoss(name, fn, terms, total_name, cost, bool(memory))
    return fn


def get_pair_loss(name: str) -> PairLoss:
    """The registered kind ``name``; ``ValueError`` naming the known kinds otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown pair loss {name!r} (known: {', '.join(pair_loss_names())}; "
                         "register one with cvs_tf.losses.register_pair_loss)") from None


def pair_loss_names() -> list[str]:
    """The registered kinds, sorted."""
    return sorted(_REGISTRY)


def memory_kinds() -> list[str]:
    """The registered kinds that take a cross-batch memory, sorted."""
    return sorted(n for n, k in _REGISTRY.items() if k.memory)
