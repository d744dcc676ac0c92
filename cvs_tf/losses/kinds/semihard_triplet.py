"""The default pair loss, ``semihard_triplet``: the thesis's eq. 3.1.6 semi-hard triplet combination of a modality pair."""

from __future__ import annotations

from collections.abc import Mapping

import tensorflow as tf

from cvs_tf.config import LossConfig
from cvs_tf.losses.pair_ops import candidates
from cvs_tf.losses.registry import DEFAULT_PAIR_LOSS, Memory, PairCost, register_pair_loss
from cvs_tf.losses.triplet import (
    batched_cross_triplet_loss,
    batched_masked_triplet_loss,
    batched_semi_hard_triplet_loss,
    check_sets,
)

__all__ = ["pair_triplet_loss", "semihard_triplet"]

_DEFAULTS = LossConfig()


def semihard_triplet(yx, ex, yy, ey, options: Mapping, memory: Memory | None = None) -> dict:
    """Eq. 3.1.6 for P stacked pairs (x, y): ``total = γ1 · intra(x) + γ2 · intra(y) + γ3 · inter``.

    ``intra(x)`` is the semi-hard triplet loss within x with margin α1 (``intra(y)``: within y,
    α2) and ``inter`` the one with anchors in x and positives/negatives in y, margin α3
    (:mod:`cvs_tf.losses.triplet`); ``(γ1, γ2, γ3) = options["gammas"]``, ``(α1, α2, α3) =
    options["margins"]``. With ``options["symmetric_inter"]``, ``inter`` is the **average** of
    x -> y and y -> x, so γ3 keeps its meaning and the total keeps the one-way scale.

    Terms, each (P,): ``intra_{a}``, ``intra_{b}``, ``inter`` and ``total``; the model's mean total
    is the top-level ``triplet``. With a cross-batch ``memory`` the anchors stay the batch and each
    term mines among the batch and the memory's valid rows of its candidate side (``intra(x)``: x's,
    ``inter``: y's).
    """
    (g1, g2, g3), (m1, m2, m3) = options["gammas"], options["margins"]
    if memory is None:
        intra_x, intra_y = _intra_terms(yx, ex, yy, ey, m1, m2)
        inter = batched_cross_triplet_loss(yx, ex, yy, ey, m3)
    else:
        intra_x = batched_masked_triplet_loss(yx, ex, *candidates(ex, yx, ex, memory.side("x"), True), m1)
        intra_y = batched_masked_triplet_loss(yy, ey, *candidates(ey, yy, ey, memory.side("y"), True), m2)
        inter = batched_masked_triplet_loss(yx, ex, *candidates(ex, yy, ey, memory.side("y")), m3)
    if options["symmetric_inter"]:
        back = batched_cross_triplet_loss(yy, ey, yx, ex, m3) if memory is None else \
            batched_masked_triplet_loss(yy, ey, *candidates(ey, yx, ex, memory.side("x")), m3)
        inter = 0.5 * (inter + back)
    total = g1 * intra_x + g2 * intra_y + g3 * inter
    return {"intra_{a}": intra_x, "intra_{b}": intra_y, "inter": inter, "total": total}


def _intra_terms(yx, ex, yy, ey, m1, m2):
    """``intra(x)`` and ``intra(y)`` of P stacked pairs; as one batched op on the 2P sets when x and y have one size."""
    if ex.shape[-2] != ey.shape[-2]:  # sets of different (static) sizes: one op each
        return batched_semi_hard_triplet_loss(yx, ex, m1), batched_semi_hard_triplet_loss(yy, ey, m2)
    n = ex.shape[0] if ex.shape[0] is not None else tf.shape(ex)[0]
    margins = tf.repeat(tf.constant([m1, m2], tf.float32), n)
    intra = batched_semi_hard_triplet_loss(tf.concat([yx, yy], 0), tf.concat([ex, ey], 0), margins)
    return intra[:n], intra[n:]


BYTES_PER_TERM = 84  # per (anchor, candidate) entry: distances, masks, the sorted row, ranks, hinge, gradients


def semihard_cost(options: Mapping) -> PairCost:
    """O(B²) per pair (the sort-based mining: O(B·M) per term): 3 terms, 4 with ``symmetric_inter``."""
    return PairCost(square=BYTES_PER_TERM * (4 if options.get("symmetric_inter") else 3))


register_pair_loss(DEFAULT_PAIR_LOSS, semihard_triplet, terms=("intra_{a}", "intra_{b}", "inter"),
                   total_name="triplet", cost=semihard_cost, memory=True)


def pair_triplet_loss(labels_x, emb_x, labels_y, emb_y, gammas=_DEFAULTS.gammas, margins=_DEFAULTS.margins,
                      symmetric=_DEFAULTS.symmetric_inter):
    """:func:`semihard_triplet` for one modality pair (x, y) of (N, D) embeddings (the sets may differ in size).

    Labels are (N,) ids, a (N, 1) column or (N, C) multi-hot rows; the defaults are ``LossConfig``'s.
    Returns a dict of float32 scalars: ``intra_x``, ``intra_y``, ``inter``, ``total``.
    """
    if len(gammas) != 3 or len(margins) != 3:
        raise ValueError(f"gammas and margins need 3 values each; got {gammas!r} and {margins!r}")
    options = {"gammas": gammas, "margins": margins, "symmetric_inter": symmetric}
    lx, ex, ly, ey = check_sets(labels_x, emb_x, labels_y, emb_y)
    out = semihard_triplet(lx[None], ex[None], ly[None], ey[None], options)
    return {t.format(a="x", b="y"): v[0] for t, v in out.items()}
