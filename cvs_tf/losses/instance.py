"""The instance term: symmetric InfoNCE over true pairs (CLIP-style), added to the class-level terms on instance-paired sets."""

from __future__ import annotations

import tensorflow as tf

from cvs_tf.losses.pair_ops import (
    as_float32,
    diagonal_nll,
    require_row_aligned,
    similarities,
    transpose,
)

__all__ = ["instance_infonce"]


def instance_infonce(ex, ey, temperature) -> tf.Tensor:
    """Symmetric InfoNCE of P stacked pairs (x, y) whose row i is the same item in both sets: (P,) losses.

    With ``s_ij = <x_i, y_j>`` (cosines of L2-normalised (P, B, D) embeddings) and ``τ = temperature``::

        x_to_y = mean_i -log( exp(s_ii/τ) / Σ_j exp(s_ij/τ) ),   y_to_x: the same with s transposed
        loss   = (x_to_y + y_to_x) / 2

    Unlike the ``infonce`` kind, no same-class item is masked: every other item of the batch is a
    negative, whatever its class, so the term separates items and not only classes. Pure and
    XLA-compilable.
    """
    require_row_aligned("instance", ex, ey)
    ex, ey = as_float32(ex, ey)
    logits = similarities(ex, ey) / tf.cast(temperature, tf.float32)
    return 0.5 * (diagonal_nll(logits) + diagonal_nll(transpose(logits)))
