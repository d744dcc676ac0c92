"""Optional reconstruction loss (the thesis's "adversarial" ablation, §5.2.C) as a pure TF function.

Imports only ``tensorflow`` so it runs on TF 2.15 and 2.21 alike.
"""

import tensorflow as tf

__all__ = ["reconstruction_loss"]


def reconstruction_loss(target, reconstruction):
    """Mean squared error between a branch input and its reconstruction from the embedding.

    Args:
      target: (B, d) the branch input (the modality's feature vector).
      reconstruction: (B, d) the decoder's output.

    Returns:
      A float32 scalar, the mean of the squared differences over all B·d entries; an empty
      batch gives 0. Shapes must match exactly (no broadcasting), else ValueError.
    """
    target = tf.cast(tf.convert_to_tensor(target), tf.float32)
    reconstruction = tf.cast(tf.convert_to_tensor(reconstruction), tf.float32)
    if not target.shape.is_compatible_with(reconstruction.shape):
        raise ValueError(
            f"target and reconstruction must have the same shape; got {target.shape} and {reconstruction.shape}"
        )
    sq = tf.square(target - reconstruction)
    return tf.math.divide_no_nan(tf.reduce_sum(sq), tf.cast(tf.size(sq), tf.float32))
