"""Shared pieces of the pair-loss kinds: same-class masks, similarities, masked means and softmaxes, the temperature.

Every function works on P stacked pairs of sets (leading dimension P, or any leading dimensions):
labels (P, B) class ids or (P, B, C) multi-hot rows, embeddings (P, B, D). Masked entries are
replaced with a finite :data:`MASKED` value before any reduction, never with ``-inf``, so every
intermediate stays finite: a row with nothing left (an anchor without positive or negative) is
skipped by a masked mean and yields 0, not NaN, in the value and in the gradient.
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Real

import tensorflow as tf

# the one same-class rule (equal ids / multi-hot rows sharing a label) is triplet's
from cvs_tf.losses.triplet import _same_class

__all__ = ["MASKED", "as_float32", "candidates", "diagonal", "diagonal_nll", "masked_log_softmax", "masked_mean", "require_row_aligned",
           "same_class", "similarities", "temperature", "transpose"]

MASKED = -1e9  # a logit or similarity that takes an entry out of a softmax or a max (finite: no NaN)


def as_float32(*embeddings) -> list[tf.Tensor]:
    """The embeddings (arrays or tensors of any float dtype) as float32 tensors."""
    return [tf.cast(tf.convert_to_tensor(e), tf.float32) for e in embeddings]


def same_class(yx, yy, ex) -> tf.Tensor:
    """(..., Bx, By) bool: item i of x and item j of y share a class.

    Labels are (..., B) ids (equal ids) when their rank is below that of the embeddings ``ex``,
    else (..., B, C) multi-hot rows (at least one common label; an all-zero row matches nothing).
    """
    yx = tf.convert_to_tensor(yx)
    return _same_class(yx, tf.convert_to_tensor(yy), ids=yx.shape.rank < tf.convert_to_tensor(ex).shape.rank)


def similarities(ex, ey) -> tf.Tensor:
    """(..., Bx, By) inner products ``<x_i, y_j>``: the cosines of L2-normalised embeddings."""
    return tf.matmul(ex, ey, transpose_b=True)


def transpose(m) -> tf.Tensor:
    """The (..., By, Bx) transpose of the last two axes: a y -> x view of an x -> y matrix."""
    return tf.linalg.matrix_transpose(m)


def diagonal(s) -> tf.Tensor:
    """(Bx, By) bool identity mask (``i == j``) for (..., Bx, By) matrices ``s``; broadcasts over P."""
    shape = tf.shape(s)
    return tf.cast(tf.eye(shape[-2], shape[-1]), tf.bool)


def masked_mean(values, mask, axis=-1) -> tf.Tensor:
    """Mean of ``values`` over the True entries of ``mask`` along ``axis``; 0 where there is none."""
    mask = tf.broadcast_to(mask, tf.shape(values))
    total = tf.reduce_sum(tf.where(mask, values, tf.zeros_like(values)), axis)
    return tf.math.divide_no_nan(total, tf.reduce_sum(tf.cast(mask, values.dtype), axis))


def masked_log_softmax(logits, keep=None) -> tf.Tensor:
    """``log softmax`` along the last axis with only the ``keep`` entries in the denominator (all if None).

    Entries outside ``keep`` still get a (finite) value, ``logit - logsumexp(kept)``: mask them
    after use. A row that keeps nothing has the finite denominator ``MASKED + log(n)``.
    """
    if keep is None:
        return tf.nn.log_softmax(logits, axis=-1)
    kept = tf.where(keep, logits, tf.fill(tf.shape(logits), tf.constant(MASKED, logits.dtype)))
    return logits - tf.reduce_logsumexp(kept, axis=-1, keepdims=True)


def diagonal_nll(logits, keep=None) -> tf.Tensor:
    """Mean over anchors i of ``-log softmax(logits_i)_i``, the denominator over ``keep`` (all if None): (...)."""
    return -tf.reduce_mean(tf.linalg.diag_part(masked_log_softmax(logits, keep)), axis=-1)


def temperature(options: Mapping) -> tf.Tensor:
    """``options["temperature"]`` as a float32 scalar: a Python number, or the learnt ``exp(log_t)`` tensor.

    A Python number must be > 0 (``ValueError`` otherwise); a tensor is trusted (it is an exponential).
    """
    t = options["temperature"]
    if isinstance(t, Real) and not t > 0:
        raise ValueError(f"temperature must be > 0, got {t!r}")
    return tf.cast(t, tf.float32)


def require_row_aligned(kind: str, ex, ey) -> None:
    """``ValueError`` when x and y have different static set sizes: the kind pairs row i of x with row i of y."""
    bx, by = ex.shape[-2], ey.shape[-2]
    if bx is not None and by is not None and bx != by:
        raise ValueError(f"pair loss {kind!r} pairs row i of x with row i of y: both sets need the same "
                         f"size, got {bx} and {by}")


def candidates(anchors, labels, emb, side=None, exclude_self: bool = False) -> tuple:
    """``(labels, embeddings, keep)`` of the candidates ``emb`` (P, B, D) (labels (P, B[, C])) of ``anchors`` (P, A, D).

    The candidates are the set ``emb``, then with ``side`` (a cross-batch memory side ``(labels,
    embeddings, valid)``, (P, N[, C]), (P, N, D), (P, N): :meth:`cvs_tf.losses.registry.Memory.side`)
    its N rows; ``keep`` (P, A, B+N) bool says which count for each anchor: the valid memory rows, and
    the set's rows but the anchor's own (``exclude_self``: the anchors are the set) or all of them.
    """
    emb, labels = tf.convert_to_tensor(emb), tf.convert_to_tensor(labels)
    lead, a, b = tf.shape(emb)[:-2], tf.shape(anchors)[-2], tf.shape(emb)[-2]
    own = tf.logical_not(tf.cast(tf.eye(a, b), tf.bool)) if exclude_self else tf.ones([a, b], tf.bool)
    own = tf.broadcast_to(own, tf.concat([lead, [a, b]], 0))
    if side is None:
        return labels, emb, own
    m_labels, m_emb, valid = side
    valid = tf.convert_to_tensor(valid)
    rows = tf.broadcast_to(valid[..., None, :], tf.concat([lead, [a], tf.shape(valid)[-1:]], 0))
    axis = emb.shape.rank - 2
    return (tf.concat([labels, tf.cast(m_labels, labels.dtype)], axis),
            tf.concat([emb, tf.cast(m_emb, emb.dtype)], axis), tf.concat([own, rows], -1))
