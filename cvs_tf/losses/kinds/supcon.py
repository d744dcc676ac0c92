"""The ``supcon`` pair loss: supervised contrastive learning (Khosla et al., 2020) within and across a modality pair."""

from __future__ import annotations

from collections.abc import Mapping

import tensorflow as tf

from cvs_tf.losses.pair_ops import (
    as_float32,
    candidates,
    diagonal,
    masked_log_softmax,
    masked_mean,
    same_class,
    similarities,
    temperature,
    transpose,
)
from cvs_tf.losses.registry import Memory, PairCost, register_pair_loss

__all__ = ["supcon", "supcon_term"]


def supcon_term(logits, positives, candidates=None) -> tf.Tensor:
    """One SupCon term: the mean over anchors with a positive of ``-mean_{p in P(i)} log softmax_{A(i)}(logits)_ip``.

    ``logits`` (..., N, M): anchor i against candidate j; ``positives`` (..., N, M) bool, P(i);
    ``candidates`` (..., N, M) bool, A(i) (the softmax denominator; None: every j), a superset of
    P(i). An anchor with an empty P(i) is skipped; with none left the term is 0. Returns (...).
    """
    log_prob = masked_log_softmax(logits, candidates)
    per_anchor = -masked_mean(log_prob, positives)
    return masked_mean(per_anchor, tf.reduce_any(positives, axis=-1))


def supcon(yx, ex, yy, ey, options: Mapping, memory: Memory | None = None) -> dict:
    """Supervised contrastive loss (Khosla et al. 2020, L^sup_out) of P stacked pairs (x, y).

    With ``s_ij`` the cosine (the inner product of the L2-normalised embeddings), ``τ =
    options["temperature"]`` (a float, or the learnt float32 scalar tensor) and, for an anchor i,
    P(i) its positives and A(i) its candidates::

        ℓ_i = -1/|P(i)| Σ_{p ∈ P(i)} log( exp(s_ip/τ) / Σ_{a ∈ A(i)} exp(s_ia/τ) )

    * ``intra_{a}``: anchors and candidates in x, A(i) = x \\ {i}, P(i) = the items of A(i) of
      i's class; ``intra_{b}`` the same within y;
    * ``inter``: the average of x -> y (anchors in x, A(i) = every item of y, P(i) = those of i's
      class) and y -> x;
    * ``total = γ1 · intra_{a} + γ2 · intra_{b} + γ3 · inter`` with ``(γ1, γ2, γ3) = options["gammas"]``.

    Each term is the mean of ℓ_i over the anchors with |P(i)| > 0; the others are skipped (a term
    with no such anchor is 0, never NaN). "Of i's class" means an equal class id, or for multi-hot
    (P, B, C) labels sharing at least one class (an all-zero row has no positive). x and y may
    have different set sizes. Every term is (P,). With a cross-batch ``memory`` the anchors stay the
    batch and A(i) also holds the memory's valid rows of the candidate side.
    """
    ex, ey = as_float32(ex, ey)
    tau = temperature(options)
    g1, g2, g3 = options["gammas"]
    if memory is not None:
        intra_x, intra_y, x_to_y, y_to_x = (
            _memory_term(ya, ea, y, e, memory.side(side), tau, ea is e)
            for ya, ea, y, e, side in ((yx, ex, yx, ex, "x"), (yy, ey, yy, ey, "y"), (yx, ex, yy, ey, "y"),
                                       (yy, ey, yx, ex, "x")))
        inter = 0.5 * (x_to_y + y_to_x)
        total = g1 * intra_x + g2 * intra_y + g3 * inter
        return {"intra_{a}": intra_x, "intra_{b}": intra_y, "inter": inter, "total": total}
    intra = []
    for labels, emb in ((yx, ex), (yy, ey)):
        logits = similarities(emb, emb) / tau
        others = tf.logical_not(diagonal(logits))
        intra.append(supcon_term(logits, tf.logical_and(same_class(labels, labels, emb), others), others))
    logits, same = similarities(ex, ey) / tau, same_class(yx, yy, ex)
    inter = 0.5 * (supcon_term(logits, same) + supcon_term(transpose(logits), transpose(same)))
    total = g1 * intra[0] + g2 * intra[1] + g3 * inter
    return {"intra_{a}": intra[0], "intra_{b}": intra[1], "inter": inter, "total": total}


def _memory_term(ya, ea, y, e, side, tau, same_set: bool) -> tf.Tensor:
    """One SupCon term with anchors ``ea`` and candidates ``e`` then the memory ``side`` (the anchor itself
    left out when ``same_set``)."""
    cy, ce, keep = candidates(ea, y, e, side, same_set)
    return supcon_term(similarities(ea, ce) / tau, tf.logical_and(same_class(ya, cy, ea), keep), keep)


register_pair_loss("supcon", supcon, terms=("intra_{a}", "intra_{b}", "inter"),
                   cost=PairCost(square=60), memory=True)  # bytes per (anchor, candidate) entry: docs/performance.md
