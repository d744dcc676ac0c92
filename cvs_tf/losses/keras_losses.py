"""Thin ``keras.losses.Loss`` wrappers over the pure loss functions, registered for `.keras` saving.

Each wrapper's ``call(y_true, y_pred)`` returns the pure function's batch scalar, so Keras'
reduction leaves it unchanged; per-sample weights are not meaningful for a batch-mined triplet
loss and should not be passed. ``cross_triplet_loss`` and ``pair_triplet_loss`` take two sets of
embeddings and have no ``(y_true, y_pred)`` form: the models call them directly.
"""

import keras

from cvs_tf.losses.classification import classification_loss
from cvs_tf.losses.reconstruction import reconstruction_loss
from cvs_tf.losses.triplet import semi_hard_triplet_loss

__all__ = ["SemiHardTripletLoss", "ClassificationLoss", "ReconstructionLoss"]


@keras.saving.register_keras_serializable(package="cvs_tf")
class SemiHardTripletLoss(keras.losses.Loss):
    """Keras form of :func:`cvs_tf.losses.semi_hard_triplet_loss`: ``y_true`` labels, ``y_pred`` (N, D) embeddings."""

    def __init__(self, margin=1.0, name="semi_hard_triplet_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.margin = float(margin)

    def call(self, y_true, y_pred):
        return semi_hard_triplet_loss(y_true, y_pred, margin=self.margin)

    def get_config(self):
        config = super().get_config()
        config["margin"] = self.margin
        return config


@keras.saving.register_keras_serializable(package="cvs_tf")
class ClassificationLoss(keras.losses.Loss):
    """Keras form of :func:`cvs_tf.losses.classification_loss`: ids or multi-hot ``y_true``, logits ``y_pred``."""

    def __init__(self, name="classification_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return classification_loss(y_true, y_pred)


@keras.saving.register_keras_serializable(package="cvs_tf")
class ReconstructionLoss(keras.losses.Loss):
    """Keras form of :func:`cvs_tf.losses.reconstruction_loss`: ``y_true`` the input, ``y_pred`` the reconstruction."""

    def __init__(self, name="reconstruction_loss", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return reconstruction_loss(y_true, y_pred)
