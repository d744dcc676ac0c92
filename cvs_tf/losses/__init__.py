"""Losses of cvs_tf: the pair-loss registry (default: semi-hard triplet, eq. 3.1.6), classification and reconstruction.

The pure functions live in ``triplet``, ``classification``, ``instance`` and ``reconstruction`` and import only
``tensorflow``; a pair-loss kind is one batched function registered with ``registry``, and the built-in
kinds are the modules of ``kinds`` (the default, ``kinds/semihard_triplet.py``), all registered on
import; the Keras ``Loss`` wrappers live in ``keras_losses``.
"""

from cvs_tf.losses.classification import classification_loss
from cvs_tf.losses.instance import instance_infonce
from cvs_tf.losses.keras_losses import ClassificationLoss, ReconstructionLoss, SemiHardTripletLoss
from cvs_tf.losses.kinds.semihard_triplet import pair_triplet_loss, semihard_triplet
from cvs_tf.losses.reconstruction import reconstruction_loss
from cvs_tf.losses.registry import (
    DEFAULT_PAIR_LOSS,
    PairCost,
    PairLoss,
    get_pair_loss,
    pair_loss_names,
    register_pair_loss,
)
from cvs_tf.losses.triplet import (
    cross_triplet_loss,
    pairwise_squared_distances,
    same_class_matrix,
    semi_hard_triplet_loss,
)

__all__ = [
    "DEFAULT_PAIR_LOSS",
    "PairCost",
    "PairLoss",
    "register_pair_loss",
    "get_pair_loss",
    "pair_loss_names",
    "semihard_triplet",
    "pairwise_squared_distances",
    "same_class_matrix",
    "semi_hard_triplet_loss",
    "cross_triplet_loss",
    "pair_triplet_loss",
    "classification_loss",
    "instance_infonce",
    "reconstruction_loss",
    "SemiHardTripletLoss",
    "ClassificationLoss",
    "ReconstructionLoss",
]
