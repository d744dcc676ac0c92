"""Thin ``keras.losses.Loss`` wrappers over the pure loss functions, registered for `.keras` saving.

Each wrapper's ``call(y_true, y_pred)`` returns the pure function's batch scalar, so Keras'
reduction leaves it unchanged; per-sample weights are not meaningful for a batch-mined triplet
loss and should not be passed. The cross-set triplet and the pair-loss kinds take two sets of
embeddings and have no ``(y_true, y_pred)`` form: the models call them through the pair-loss registry.
"""

import keras

from cvs_tf.losses.classification import classification_loss
from cvs_tf.losses.reconstruction import reconstruction_loss
from cvs_tf.losses.triplet import semi_hard_triplet_loss

__all__ = ["SemiHardTripletLoss", "ClassificationLoss", "ReconstructionLoss"]


class _FunctionLoss(keras.losses.Loss):
    """``call`` is ``fn(y_true, y_pred, **options)``; subclasses set ``fn`` and ``default_name``."""

    fn = None
    default_name = None

    def __init__(self, name=None, **kwargs):
        super().__init__(name=name or self.default_name, **kwargs)

    def options(self) -> dict:
        return {}

    def call(self, y_true, y_pred):
        return type(self).fn(y_true, y_pred, **self.options())

    def get_config(self):
        return {**super().get_config(), **self.options()}


@keras.saving.register_keras_serializable(package="cvs_tf")
class SemiHardTripletLoss(_FunctionLoss):
    """Keras form of :func:`cvs_tf.losses.semi_hard_triplet_loss`: ``y_true`` labels, ``y_pred`` (N, D) embeddings."""

    fn = staticmethod(semi_hard_triplet_loss)
    default_name = "semi_hard_triplet_loss"

    def __init__(self, margin=1.0, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.margin = float(margin)

    def options(self) -> dict:
        return {"margin": self.margin}


@keras.saving.register_keras_serializable(package="cvs_tf")
class ClassificationLoss(_FunctionLoss):
    """Keras form of :func:`cvs_tf.losses.classification_loss`: ids or multi-hot ``y_true``, logits ``y_pred``."""

    fn = staticmethod(classification_loss)
    default_name = "classification_loss"


@keras.saving.register_keras_serializable(package="cvs_tf")
class ReconstructionLoss(_FunctionLoss):
    """Keras form of :func:`cvs_tf.losses.reconstruction_loss`: ``y_true`` the input, ``y_pred`` the reconstruction."""

    fn = staticmethod(reconstruction_loss)
    default_name = "reconstruction_loss"
