"""The ``dscmr`` pair loss: DSCMR's label-similarity likelihood and modality invariance (Zhen et al., CVPR 2019)."""

from __future__ import annotations

from collections.abc import Mapping

import tensorflow as tf

from cvs_tf.losses.pair_ops import (
    as_float32,
    candidates,
    require_row_aligned,
    same_class,
    similarities,
)
from cvs_tf.losses.registry import Memory, PairCost, register_pair_loss

__all__ = ["dscmr", "similarity_likelihood"]


def similarity_likelihood(yu, u, yv, v, keep=None) -> tf.Tensor:
    """``mean_{i,j} [log(1 + e^θ_ij) - S_ij · θ_ij]`` with ``θ_ij = ½ cos(u_i, v_j)``, S the same-class matrix: (...).

    The negative log-likelihood of S under ``p(S_ij = 1) = σ(θ_ij)``, over every (i, j), i = j
    included (as in the paper and its code); ``log(1 + e^θ)`` is ``softplus(θ)`` (stable). With
    ``keep`` (..., n, m) bool the mean is over its true entries only.
    """
    theta = 0.5 * similarities(u, v)
    s = tf.cast(same_class(yu, yv, u), theta.dtype)
    nll = tf.nn.softplus(theta) - s * theta
    if keep is None:
        return tf.reduce_mean(nll, axis=[-2, -1])
    return tf.math.divide_no_nan(tf.reduce_sum(tf.where(keep, nll, tf.zeros_like(nll)), axis=[-2, -1]),
                                 tf.reduce_sum(tf.cast(keep, nll.dtype), axis=[-2, -1]))


def dscmr(yx, ex, yy, ey, options: Mapping, memory: Memory | None = None) -> dict:
    """DSCMR's J2 and J3 (Zhen et al., "Deep Supervised Cross-modal Retrieval", CVPR 2019) of P stacked pairs (x, y).

    With u_i the items of x, v_j those of y (the L2-normalised embeddings, so the inner product is
    the cosine) and ``S_ij = 1`` when the labels share a class (equal ids, or multi-hot rows with
    a common class; an all-zero row shares none)::

        similarity = J(u, v) + J(u, u) + J(v, v)            (J2: inter-modal + both intra-modal)
        J(u, v)    = 1/(n·m) Σ_ij [log(1 + e^θ_ij) - S_ij θ_ij],   θ_ij = ½ cos(u_i, v_j)
        invariance = 1/n Σ_i ||u_i - v_i||²                 (J3: row i of x and of y are one item/class)
        total      = similarity + λ · invariance,           λ = options["invariance"]

    (the three J terms are summed, as in the paper's J2 and its code). J3 pairs row i of x with
    row i of y, so both sets need the same size B. DSCMR's J1, the linear classifier in the common
    space, is not part of this kind: it is the model's classification term, weighted by
    ``loss.alpha`` (a softmax cross-entropy here, where the paper takes a squared error). Terms:
    ``similarity``, ``invariance`` and ``total``, each (P,). With a cross-batch ``memory`` each J's
    second set also holds the memory's valid rows of its side (v for J(u, v), u for J(u, u), v for
    J(v, v)); J3 stays on the batch's aligned rows.
    """
    require_row_aligned("dscmr", ex, ey)
    ex, ey = as_float32(ex, ey)
    if memory is None:
        similarity = similarity_likelihood(yx, ex, yy, ey) + similarity_likelihood(yx, ex, yx, ex) \
            + similarity_likelihood(yy, ey, yy, ey)
    else:
        similarity = tf.add_n([similarity_likelihood(ya, ea, *candidates(ea, y, e, memory.side(side)))
                               for ya, ea, y, e, side in ((yx, ex, yy, ey, "y"), (yx, ex, yx, ex, "x"),
                                                          (yy, ey, yy, ey, "y"))])
    invariance = tf.reduce_mean(tf.reduce_sum(tf.square(ex - ey), axis=-1), axis=-1)
    total = similarity + tf.cast(options["invariance"], tf.float32) * invariance
    return {"similarity": similarity, "invariance": invariance, "total": total}


register_pair_loss("dscmr", dscmr, terms=("similarity", "invariance"),
                   cost=PairCost(square=40), memory=True)  # bytes per (anchor, candidate) entry: docs/performance.md
