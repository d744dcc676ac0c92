"""The per-modality branch: dense layers (two in the thesis) that map a modality's features into the common dimension."""

import keras
import numpy as np

from cvs_tf.config import fields_in
from cvs_tf.layers.config import stored_config

#: The ModelConfig fields that are ModalityBranch arguments (config.py's "branch" group).
BRANCH_FIELDS = fields_in("branch")["model"]

__all__ = ["ModalityBranch"]


@keras.saving.register_keras_serializable(package="cvs_tf")
class ModalityBranch(keras.layers.Layer):
    """Maps one modality's feature vector x_m (B, d_m) to g_m (B, dim) (thesis §3.1, Fig. 10).

    ``g_m = Dense(dim)( [Dropout]( [BatchNorm]( relu(z W_1 + b_1) ) ) )`` with ``z = x_m``, i.e. the
    thesis's two fully connected layers of 512 units: ``Dense(hidden_dim, relu) -> Dense(dim)``, both
    randomly initialised. Batch norm (after the first ReLU) and dropout (before each later dense
    layer) are optional and off by default (design §2). ``depth`` > 1 stacks further
    ``Dense(hidden_dim, relu)`` layers before the projection. With ``standardize``,
    ``z = (x_m - μ) ⊙ s`` where μ and s = 1/σ are non-trainable per-feature weights set from the
    train split (:meth:`set_standardization`; identity until set). The output is not normalised:
    the model L2-normalises it, after attention when attention is on.

    Args:
      dim: output dimension D of the common space (512 in the thesis).
      hidden_dim: units of the first layer; ``None`` means ``dim``.
      dropout: dropout rate in [0, 1); 0 switches the dropout layer off (no layer is created).
      use_batchnorm: insert ``BatchNormalization`` after the hidden layer.
      depth: hidden layers (>= 1; 1 is the thesis's branch).
      standardize: create the per-feature standardisation weights ``feature_mean``/``feature_scale``.

    Shapes: input (B, d_m) with a known d_m; output (B, dim).

    Sublayers are the attributes ``hidden`` (Dense + ReLU), ``deeper`` (the further hidden layers),
    ``batchnorm`` (or None), ``drop`` (or None) and ``proj`` (Dense).
    """

    def __init__(self, dim=512, hidden_dim=None, dropout=0.0, use_batchnorm=False, depth=1, standardize=False,
                 **kwargs):
        super().__init__(**kwargs)
        if int(dim) <= 0:
            raise ValueError(f"dim must be a positive integer; got {dim!r}")
        if hidden_dim is not None and int(hidden_dim) <= 0:
            raise ValueError(f"hidden_dim must be a positive integer or None; got {hidden_dim!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {dropout!r}")
        if int(depth) < 1:
            raise ValueError(f"depth must be a positive integer; got {depth!r}")
        self.dim = int(dim)
        self.depth = int(depth)
        self.standardize = bool(standardize)
        self.hidden_dim = None if hidden_dim is None else int(hidden_dim)
        self.dropout = float(dropout)
        self.use_batchnorm = bool(use_batchnorm)
        units = self.hidden_dim if self.hidden_dim is not None else self.dim
        self.hidden = keras.layers.Dense(units, activation="relu", name="hidden", dtype=self.dtype_policy)
        self.deeper = [keras.layers.Dense(units, activation="relu", name=f"hidden_{i + 2}", dtype=self.dtype_policy)
                       for i in range(self.depth - 1)]
        self.batchnorm = (
            keras.layers.BatchNormalization(name="batchnorm", dtype=self.dtype_policy)
            if self.use_batchnorm else None
        )
        self.drop = (
            keras.layers.Dropout(self.dropout, name="dropout", dtype=self.dtype_policy)
            if self.dropout > 0.0 else None
        )
        self.proj = keras.layers.Dense(self.dim, name="proj", dtype=self.dtype_policy)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != 2 or input_shape[-1] is None:
            raise ValueError(
                f"{self.name}: ModalityBranch expects inputs of shape (B, d) with a known d; "
                f"got shape {input_shape}"
            )
        if self.standardize:
            d = input_shape[-1]
            self.feature_mean = self.add_weight(shape=(d,), initializer="zeros", trainable=False, name="feature_mean",
                                                dtype="float32")
            self.feature_scale = self.add_weight(shape=(d,), initializer="ones", trainable=False, name="feature_scale",
                                                 dtype="float32")
        self.hidden.build(input_shape)
        shape = (input_shape[0], self.hidden.units)
        if self.batchnorm is not None:
            self.batchnorm.build(shape)
        for layer in self.deeper:
            layer.build(shape)
        self.proj.build(shape)

    def set_standardization(self, mean, std, eps: float = 1e-6) -> None:
        """Set μ and s = 1/max(σ, eps) of the standardisation (``standardize=True``), e.g. from the train split."""
        if not self.standardize:
            raise ValueError(f"{self.name}: built without standardize=True")
        std = np.maximum(np.asarray(std, np.float32), eps)
        self.feature_mean.assign(np.asarray(mean, np.float32))
        self.feature_scale.assign(1.0 / std)

    def call(self, x, training=None):
        if self.standardize:
            x = (x - keras.ops.cast(self.feature_mean, x.dtype)) * keras.ops.cast(self.feature_scale, x.dtype)
        h = self.hidden(x)
        if self.batchnorm is not None:
            h = self.batchnorm(h, training=training)
        for layer in self.deeper:
            h = layer(self.drop(h, training=training) if self.drop is not None else h)
        if self.drop is not None:
            h = self.drop(h, training=training)
        return self.proj(h)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.dim)

    def get_config(self):
        return stored_config(super().get_config(), self, BRANCH_FIELDS)
