"""The ``max_violation`` pair loss: VSE++'s hardest-negative hinge (Faghri et al., 2018), class-aware."""

from __future__ import annotations

from collections.abc import Mapping

import tensorflow as tf

from cvs_tf.losses.pair_ops import (
    MASKED,
    as_float32,
    candidates,
    diagonal,
    masked_mean,
    require_row_aligned,
    same_class,
    similarities,
    transpose,
)
from cvs_tf.losses.registry import Memory, PairCost, register_pair_loss

__all__ = ["max_violation"]


def _one_way(sim, negatives, margin) -> tf.Tensor:
    """Mean over anchors with a negative of ``[m - s_ii + max_{j ∈ negatives(i)} s_ij]_+``: (...)."""
    hardest = tf.reduce_max(tf.where(negatives, sim, tf.fill(tf.shape(sim), MASKED)), axis=-1)
    hinge = tf.nn.relu(margin - tf.linalg.diag_part(sim) + hardest)
    return masked_mean(hinge, tf.reduce_any(negatives, axis=-1))


def max_violation(yx, ex, yy, ey, options: Mapping, memory: Memory | None = None) -> dict:
    """VSE++'s max-violation hinge (Faghri et al., "VSE++", BMVC 2018) of P stacked pairs (x, y) of row-aligned sets.

    Row i of x and row i of y are the positive pair (one item, or one class in class-aligned
    batches), so both sets need the same size B. With ``s_ij`` the cosine and ``m =
    options["vse_margin"]``::

        {a}_to_{b} = mean_i [m - s_ii + max_{j ∈ N(i)} s_ij]_+,   N(i) = {j ≠ i : y_j not of x_i's class}

    The hardest negative is never an item of the anchor's class (equal id, or multi-hot labels
    sharing a class): in a class-aligned batch those are positives, not violations. Anchors with
    no negative are skipped (a term with none left is 0). ``{b}_to_{a}`` is the same with anchors
    in y; ``total`` is the mean of the two. Every term is (P,). With a cross-batch ``memory`` the
    hardest negative is also sought among the memory's valid rows of the other side.
    """
    require_row_aligned("max_violation", ex, ey)
    ex, ey = as_float32(ex, ey)
    margin = tf.cast(options["vse_margin"], tf.float32)
    if memory is not None:
        a_to_b, b_to_a = (_memory_way(ya, ea, y, e, memory.side(side), margin)
                          for ya, ea, y, e, side in ((yx, ex, yy, ey, "y"), (yy, ey, yx, ex, "x")))
        return {"{a}_to_{b}": a_to_b, "{b}_to_{a}": b_to_a, "total": 0.5 * (a_to_b + b_to_a)}
    sim = similarities(ex, ey)
    negatives = tf.logical_and(tf.logical_not(same_class(yx, yy, ex)), tf.logical_not(diagonal(sim)))
    a_to_b = _one_way(sim, negatives, margin)
    b_to_a = _one_way(transpose(sim), transpose(negatives), margin)
    return {"{a}_to_{b}": a_to_b, "{b}_to_{a}": b_to_a, "total": 0.5 * (a_to_b + b_to_a)}


def _memory_way(ya, ea, y, e, side, margin) -> tf.Tensor:
    """One direction with anchors ``ea``, candidates ``e`` (row i the positive) then the memory ``side``."""
    cy, ce, keep = candidates(ea, y, e, side, exclude_self=True)
    return _one_way(similarities(ea, ce), tf.logical_and(tf.logical_not(same_class(ya, cy, ea)), keep), margin)


register_pair_loss("max_violation", max_violation, terms=("{a}_to_{b}", "{b}_to_{a}"),
                   cost=PairCost(square=28), memory=True)  # bytes per (anchor, candidate) entry: docs/performance.md
