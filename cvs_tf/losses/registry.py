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
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cvs_tf.config import LossConfig

__all__ = ["DEFAULT_PAIR_LOSS", "PairLoss", "get_pair_loss", "pair_loss_names", "register_pair_loss"]

DEFAULT_PAIR_LOSS = LossConfig.kind  # the thesis's semi-hard triplet, eq. 3.1.6 (losses/kinds/semihard_triplet.py)

# top-level names the model, the trainer and TensorBoard already give a meaning to
RESERVED_NAMES = ("loss", "classification", "reconstruction", "instance", "lr", "map", "total")


@dataclass(frozen=True)
class PairLoss:
    """A registered pair-loss kind: its function, its per-pair term names and the name of its mean total."""

    name: str
    fn: Callable[..., Mapping]
    terms: tuple[str, ...]
    total_name: str

    def term_names(self, a: str, b: str) -> dict[str, str]:
        """Declared term -> its name for the pair (a, b), e.g. ``intra_{a}`` -> ``intra_image``."""
        return {t: t.format(a=a, b=b) for t in self.terms}

    def __call__(self, yx, ex, yy, ey, options: Mapping) -> dict:
        """The kind's function, with its returned term names checked against the declared ones."""
        out = dict(self.fn(yx, ex, yy, ey, options))
        if set(out) != {*self.terms, "total"}:
            raise ValueError(f"pair loss {self.name!r} returned terms {sorted(out)}, "
                             f"declared {sorted(self.terms)} plus 'total'")
        return out


_REGISTRY: dict[str, PairLoss] = {}


def _check_name(what: str, name) -> None:
    if not isinstance(name, str) or not name or "." in name or name.startswith("val_") or name in RESERVED_NAMES:
        raise ValueError(f"pair loss {what} must be a non-empty string without '.', not starting with 'val_' "
                         f"and not one of {', '.join(RESERVED_NAMES)}; got {name!r}")


def register_pair_loss(name: str, fn: Callable | None = None, *, terms, total_name: str | None = None,
                       replace: bool = False):
    """Register ``fn`` as the pair loss ``name`` (``LossConfig.kind``); usable as a decorator.

    ``terms``: the per-pair term names ``fn`` returns besides ``"total"`` (``{a}``/``{b}`` stand for the
    pair's modalities); ``total_name``: the top-level name of the mean total (default: ``name``).
    Registering a taken name raises ``ValueError`` unless ``replace`` is true. Returns ``fn``.
    """
    if fn is None:
        return lambda f: register_pair_loss(name, f, terms=terms, total_name=total_name, replace=replace)
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
    if name in _REGISTRY and not replace and _REGISTRY[name].fn is not fn:
        raise ValueError(f"pair loss {name!r} is already registered (pass replace=True to replace it)")
    _REGISTRY[name] = PairLoss(name, fn, terms, total_name)
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
