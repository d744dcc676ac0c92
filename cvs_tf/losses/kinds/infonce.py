"""The ``infonce`` pair loss: CLIP-style symmetric InfoNCE between row-aligned items, same-class negatives masked."""

from __future__ import annotations

from collections.abc import Mapping

import tensorflow as tf

from cvs_tf.losses.pair_ops import (
    as_float32,
    candidates,
    diagonal,
    diagonal_nll,
    require_row_aligned,
    same_class,
    similarities,
    temperature,
    transpose,
)
from cvs_tf.losses.registry import Memory, PairCost, register_pair_loss

__all__ = ["infonce"]


def infonce(yx, ex, yy, ey, options: Mapping, memory: Memory | None = None) -> dict:
    """Symmetric InfoNCE (CLIP, Radford et al. 2021) of P stacked pairs (x, y) of row-aligned sets.

    Row i of x and row i of y are the positive pair (the same item for instance-paired sets, the
    same class for class-aligned batches), so both sets need the same size B. With ``s_ij`` the
    cosine and ``τ = options["temperature"]`` (a float, or the learnt float32 scalar tensor)::

        {a}_to_{b} = mean_i -log( exp(s_ii/τ) / Σ_{j ∈ N(i)} exp(s_ij/τ) )
        N(i) = {i} ∪ {j : y_j not of x_i's class}

    i.e. the off-diagonal items of i's class (equal id, or multi-hot labels sharing a class) are
    left out of the denominator: they are not negatives (no false negatives). ``{b}_to_{a}`` is
    the same with anchors in y (``s`` transposed). An anchor whose every other item is of its class
    has only its positive left and contributes 0 (finite; it is still counted in the mean).
    ``total`` is the mean of the two directions. Every term is (P,). With a cross-batch ``memory``,
    N(i) also holds the memory's valid rows of the other side not of x_i's class (more negatives, as
    in MoCo's queue).
    """
    require_row_aligned("infonce", ex, ey)
    ex, ey = as_float32(ex, ey)
    if memory is not None:
        a_to_b, b_to_a = (_memory_way(ya, ea, y, e, memory.side(side), temperature(options))
                          for ya, ea, y, e, side in ((yx, ex, yy, ey, "y"), (yy, ey, yx, ex, "x")))
        return {"{a}_to_{b}": a_to_b, "{b}_to_{a}": b_to_a, "total": 0.5 * (a_to_b + b_to_a)}
    logits = similarities(ex, ey) / temperature(options)
    keep = tf.logical_or(diagonal(logits), tf.logical_not(same_class(yx, yy, ex)))
    a_to_b = diagonal_nll(logits, keep)
    b_to_a = diagonal_nll(transpose(logits), transpose(keep))
    return {"{a}_to_{b}": a_to_b, "{b}_to_{a}": b_to_a, "total": 0.5 * (a_to_b + b_to_a)}


def _memory_way(ya, ea, y, e, side, tau) -> tf.Tensor:
    """One direction with anchors ``ea``, candidates ``e`` (row i the positive) then the memory ``side``."""
    cy, ce, keep = candidates(ea, y, e, side)
    logits = similarities(ea, ce) / tau
    negatives = tf.logical_and(keep, tf.logical_not(same_class(ya, cy, ea)))
    return diagonal_nll(logits, tf.logical_or(diagonal(logits), negatives))


register_pair_loss("infonce", infonce, terms=("{a}_to_{b}", "{b}_to_{a}"),
                   cost=PairCost(square=40), memory=True)  # bytes per (anchor, candidate) entry: docs/performance.md
