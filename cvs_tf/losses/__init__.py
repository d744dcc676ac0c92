"""Losses of cvs_tf: semi-hard triplet (intra, inter, eq. 3.1.6 pair), classification and reconstruction.

The pure functions live in ``triplet``, ``classification`` and ``reconstruction`` and import only
``tensorflow``; the Keras ``Loss`` wrappers live in ``keras_losses``.
"""

from cvs_tf.losses.classification import classification_loss
from cvs_tf.losses.keras_losses import ClassificationLoss, ReconstructionLoss, SemiHardTripletLoss
from cvs_tf.losses.reconstruction import reconstruction_loss
from cvs_tf.losses.triplet import (
    cross_triplet_loss,
    pair_triplet_loss,
    pairwise_squared_distances,
    same_class_matrix,
    semi_hard_triplet_loss,
)

__all__ = [
    "pairwise_squared_distances",
    "same_class_matrix",
    "semi_hard_triplet_loss",
    "cross_triplet_loss",
    "pair_triplet_loss",
    "classification_loss",
    "reconstruction_loss",
    "SemiHardTripletLoss",
    "ClassificationLoss",
    "ReconstructionLoss",
]
