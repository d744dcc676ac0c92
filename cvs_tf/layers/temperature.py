"""A learnable softmax temperature τ = exp(log τ) for the contrastive pair losses (supcon, infonce)."""

import math

import keras
import tensorflow as tf

from cvs_tf.layers.config import stored_config

__all__ = ["LearnedTemperature"]


@keras.saving.register_keras_serializable(package="cvs_tf")
class LearnedTemperature(keras.layers.Layer):
    """Holds ``log_temperature`` (a scalar weight); :meth:`temperature` is ``clip(exp(log τ), min, max)``.

    Parametrised in log space, as in CLIP, so τ stays positive and its gradient steps are
    relative. Args: ``initial`` τ at the start (> 0), ``minimum``/``maximum`` the clip range.
    """

    def __init__(self, initial=0.1, minimum=0.01, maximum=1.0, **kwargs):
        super().__init__(**kwargs)
        if not 0 < float(minimum) <= float(initial) <= float(maximum):
            raise ValueError(f"need 0 < minimum <= initial <= maximum; got {minimum}, {initial}, {maximum}")
        self.initial, self.minimum, self.maximum = float(initial), float(minimum), float(maximum)

    def build(self, input_shape=None):
        self.log_temperature = self.add_weight(shape=(), name="log_temperature", dtype="float32",
                                               initializer=keras.initializers.Constant(math.log(self.initial)))
        self.built = True

    def temperature(self):
        """τ as a float32 scalar tensor (differentiable through ``log_temperature``)."""
        return tf.clip_by_value(tf.exp(tf.cast(self.log_temperature, tf.float32)), self.minimum, self.maximum)

    def call(self, inputs=None):
        return self.temperature()

    def get_config(self):
        return stored_config(super().get_config(), self, ("initial", "minimum", "maximum"))
