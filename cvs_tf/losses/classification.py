"""Softmax cross-entropy of the shared classifier (L_c, thesis eq. 3.1.4) as a pure TF function.

Imports only ``tensorflow`` so it runs on TF 2.15 and 2.21 alike.
"""

import tensorflow as tf

__all__ = ["classification_loss"]


def classification_loss(labels, logits, label_smoothing: float = 0.0):
    """Mean softmax cross-entropy between labels and the classifier's logits.

    With label smoothing ε the target ``t`` of a row becomes ``(1 - ε) t + ε / C`` (Szegedy et
    al. 2016), so the loss is ``(1 - ε) CE(t) + ε · mean_c(-log p_c)``.

    Args:
      labels: (B,) integer class ids (a (B, 1) column is squeezed), or (B, C) multi-hot rows
        with C >= 2. A multi-hot row is turned into a soft target by dividing it by its number
        of labels (a row with labels {1, 3} targets probability 1/2 on each).
      logits: (B, C) unnormalised scores.
      label_smoothing: ε in [0, 1); 0 is plain cross-entropy.

    Returns:
      A float32 scalar, the mean over the labelled rows. Edge cases: an empty batch, or a batch
      whose multi-hot rows are all zero (no label), gives 0; an all-zero multi-hot row is left
      out of the mean (it has no target).
    """
    logits = tf.convert_to_tensor(logits)
    if logits.dtype != tf.float32:
        logits = tf.cast(logits, tf.float32)
    if logits.shape.rank is not None and logits.shape.rank != 2:
        raise ValueError(f"logits must have shape (B, C); got shape {logits.shape}")
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank == 2 and labels.shape[-1] == 1:
        labels = tf.squeeze(labels, axis=-1)
    if labels.shape.rank == 1:
        per_row = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.cast(labels, tf.int32), logits=logits
        )
        per_row = _smoothed(per_row, logits, label_smoothing)
        count = tf.cast(tf.size(per_row), tf.float32)
        return tf.math.divide_no_nan(tf.reduce_sum(per_row), count)
    if labels.shape.rank != 2:
        raise ValueError(f"labels must have shape (B,) or (B, C); got shape {labels.shape}")
    if labels.shape[-1] is not None and logits.shape[-1] is not None and labels.shape[-1] != logits.shape[-1]:
        raise ValueError(
            f"multi-hot labels have {labels.shape[-1]} classes but logits have {logits.shape[-1]}"
        )
    hot = tf.cast(labels, tf.float32)
    per_row_count = tf.reduce_sum(hot, axis=1, keepdims=True)
    target = tf.math.divide_no_nan(hot, per_row_count)
    per_row = _smoothed(-tf.reduce_sum(target * tf.nn.log_softmax(logits, axis=-1), axis=1), logits, label_smoothing)
    labelled = tf.cast(per_row_count[:, 0] > 0, tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum(per_row * labelled), tf.reduce_sum(labelled))


def _smoothed(per_row, logits, eps: float):
    """``(1 - ε) · per_row + ε · mean_c(-log softmax(logits)_c)``; ``per_row`` itself for ε = 0."""
    if not eps:
        return per_row
    uniform = -tf.reduce_mean(tf.nn.log_softmax(logits, axis=-1), axis=-1)
    return (1.0 - eps) * per_row + eps * uniform
