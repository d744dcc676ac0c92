"""RVSAttention and its shared RVSReference: the attention block of the Reference Vector Space (thesis eqs. 3.3.1-3.3.6)."""

import keras
from keras import ops

from cvs_tf.layers.aligned_attention import (
    add_square_kernel,
    attended_cosine,
    block_tanh,
    pair_dim,
    split_pair,
)
from cvs_tf.layers.config import stored_config

__all__ = ["RVSReference", "RVSAttention"]


@keras.saving.register_keras_serializable(package="cvs_tf")
class RVSReference(keras.layers.Layer):
    """The reference-side kernels shared by every RVS block of a model (thesis §3.3.A).

    Owns ``w_r`` (D, D), the reference modality's term ``g_r W_r`` of eqs. 3.3.1-3.3.2, and
    ``w_ie`` (D, D), the reference output projection of eq. 3.3.1. Both are trained in stage 1 and
    frozen afterwards (``reference.trainable = False``); every :class:`RVSAttention` built with
    this object uses these same variables. It is not called on tensors: it is built from D,
    either by the first block that uses it or explicitly with ``build(D)`` (an int or a shape
    whose last dimension is D).

    Args:
      use_w_r: create ``w_r`` (False: the reference term is dropped, ``w_r`` is None).
      kernel_initializer: initialiser of the kernels (default Glorot uniform).
    """

    def __init__(self, use_w_r=True, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.use_w_r = bool(use_w_r)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.dim = None
        self.w_r = self.w_ie = None

    def build(self, input_shape):
        if isinstance(input_shape, int):
            dim = input_shape
        else:
            shape = tuple(input_shape.as_list() if hasattr(input_shape, "as_list") else input_shape)
            dim = shape[-1] if shape else None
        if dim is None or int(dim) <= 0:
            raise ValueError(f"{self.name}: RVSReference needs a positive dimension D; got {input_shape!r}")
        self.dim = int(dim)
        if self.use_w_r:
            self.w_r = add_square_kernel(self, "w_r", 0)
        self.w_ie = add_square_kernel(self, "w_ie", 1)

    def call(self, inputs):
        raise ValueError(
            f"{self.name}: RVSReference holds shared kernels and is not called; pass it to RVSAttention"
        )

    def get_config(self):
        return stored_config(super().get_config(), self, ("use_w_r",), initializer=True)


@keras.saving.register_keras_serializable(package="cvs_tf")
class RVSAttention(keras.layers.Layer):
    """Attention between the reference modality r and one other modality s (thesis §3.3.A).

    With the row-vector convention::

        t     = tanh(g_r W_r + g_s W_s + (g_r ⊙ g_s) W_rs)   (the tanh term of 3.3.1-3.3.2)
        α_ie  = softmax(t W_ie)                              (3.3.1, 3.3.3)
        α_se  = softmax(t W_se)                              (3.3.2, 3.3.4)
        g_r'  = g_r + α_ie ⊙ g_r                             (3.3.5)
        g_s'  = g_s + α_se ⊙ g_s                             (3.3.6)

    No biases. ``W_r`` and ``W_ie`` belong to an :class:`RVSReference` shared by every block of
    the model (``reference=``); with ``reference=None`` the block creates and owns its own, so
    ``RVSAttention()`` works standalone. ``W_s``, ``W_rs`` and ``W_se`` are new in every block.
    The attributes ``w_r``/``w_ie`` return the reference's variables (the same objects in every
    block sharing it); ``w_s``, ``w_rs``, ``w_se`` are the block's own.

    Freezing: ``block.trainable = False`` also freezes the reference (Keras propagates it to
    tracked sublayers, and the reference's variables are shared); to train a new block against a
    frozen reference, set ``reference.trainable = False`` after toggling the blocks.

    Ablation switches: ``use_w_r``, ``use_w_s``, ``use_w_rs`` drop a term; a dropped own term has
    no variable. ``use_w_r=False`` on a block that owns its reference makes the reference create
    no ``w_r``; with a shared reference the block simply does not use it (the reference may still
    hold ``w_r`` for other blocks). A block with ``use_w_r=True`` needs a reference that has one.

    Args:
      reference: a shared :class:`RVSReference`, or None.
      use_w_r, use_w_s, use_w_rs: keep the g_r W_r, g_s W_s and (g_r ⊙ g_s) W_rs terms.
      return_attention: also return α_ie and α_se.
      kernel_initializer: initialiser of the block's own kernels (and of an owned reference's).

    Shapes: inputs ``(g_r, g_s)``, each (B, D) with the same D; outputs ``(g_r', g_s')``, each
    (B, D), plus ``α_ie, α_se`` (B, D) when ``return_attention``.

    ``attention_from_terms(pr, ps, g_r, g_s)`` returns ``(α_ie, α_se)`` from precomputed
    ``pr = g_r W_r`` and ``ps = g_s W_s`` (or 0/None), broadcasting like
    :meth:`AlignedAttention.attention_from_terms`; ``project`` and ``pair_score`` are as there.
    """

    def __init__(self, reference=None, use_w_r=True, use_w_s=True, use_w_rs=True,
                 return_attention=False, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if reference is not None and not isinstance(reference, RVSReference):
            raise ValueError(f"reference must be an RVSReference or None; got {type(reference).__name__}")
        self.use_w_r = bool(use_w_r)
        self.use_w_s = bool(use_w_s)
        self.use_w_rs = bool(use_w_rs)
        self.return_attention = bool(return_attention)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.owns_reference = reference is None
        if reference is None:
            reference = RVSReference(
                use_w_r=self.use_w_r,
                kernel_initializer=self.kernel_initializer,
                name="reference",
                dtype=self.dtype_policy,
            )
        self.reference = reference
        self.dim = None
        self.w_s = self.w_rs = self.w_se = None

    @property
    def w_r(self):
        """The shared reference kernel W_r (None when this block drops the reference term)."""
        return self.reference.w_r if self.use_w_r else None

    @property
    def w_ie(self):
        """The shared reference output projection W_ie."""
        return self.reference.w_ie

    def build(self, input_shape):
        self.dim = pair_dim(self, input_shape, ("g_r", "g_s"))
        if not self.reference.built:
            self.reference.build(self.dim)
        if self.reference.dim != self.dim:
            raise ValueError(
                f"{self.name}: the shared reference '{self.reference.name}' was built for "
                f"D={self.reference.dim} but the inputs have D={self.dim}"
            )
        if self.use_w_r and self.reference.w_r is None:
            raise ValueError(
                f"{self.name}: use_w_r=True but the reference '{self.reference.name}' has no w_r "
                "(it was made with use_w_r=False)"
            )
        # Offsets 2-4: an owned reference seeded from the same initializer uses 0-1.
        self.w_s = add_square_kernel(self, "w_s", 2) if self.use_w_s else None
        self.w_rs = add_square_kernel(self, "w_rs", 3) if self.use_w_rs else None
        self.w_se = add_square_kernel(self, "w_se", 4)

    def attention_from_terms(self, pr, ps, g_r, g_s):
        """(α_ie, α_se) from ``pr = g_r W_r`` and ``ps = g_s W_s`` (0/None when dropped); broadcasts."""
        t = block_tanh(self, pr, ps, g_r, g_s, self.w_rs)
        alpha_ie = ops.softmax(ops.matmul(t, self.w_ie), axis=-1)
        alpha_se = ops.softmax(ops.matmul(t, self.w_se), axis=-1)
        return alpha_ie, alpha_se

    def project(self, g, side: int):
        """The per-item term of one input: ``g W_r`` (side 0, g_r) or ``g W_s`` (side 1, g_s); None when dropped."""
        kernel = (self.w_r, self.w_s)[side]
        return None if kernel is None else ops.matmul(g, kernel)

    def pair_score(self, pr, ps, g_r, g_s):
        """Cosine of the L2-normalised outputs ``g_r'``, ``g_s'`` from :meth:`project` terms; broadcasts."""
        alpha_ie, alpha_se = self.attention_from_terms(pr, ps, g_r, g_s)
        return attended_cosine(g_r, alpha_ie, g_s, alpha_se)

    def call(self, inputs):
        g_r, g_s = split_pair(self, inputs, ("g_r", "g_s"))
        w_r = self.w_r
        pr = ops.matmul(g_r, w_r) if w_r is not None else None
        ps = ops.matmul(g_s, self.w_s) if self.w_s is not None else None
        alpha_ie, alpha_se = self.attention_from_terms(pr, ps, g_r, g_s)
        out_r = g_r + alpha_ie * g_r
        out_s = g_s + alpha_se * g_s
        if self.return_attention:
            return out_r, out_s, alpha_ie, alpha_se
        return out_r, out_s

    def compute_output_shape(self, input_shape):
        shape_r, shape_s = (tuple(s) for s in input_shape)
        if self.return_attention:
            return shape_r, shape_s, shape_r, shape_s
        return shape_r, shape_s

    def get_config(self):
        config = super().get_config()
        reference = None
        if not self.owns_reference:
            # A shared reference is serialised with a ``shared_object_id`` (Keras' own key), so
            # that inside `.keras` loading (an object-sharing scope) every block that names it
            # gets the same object back; a plain from_config outside such a scope makes a new one.
            reference = keras.saving.serialize_keras_object(self.reference)
            reference["shared_object_id"] = int(id(self.reference))
        names = ("use_w_r", "use_w_s", "use_w_rs", "return_attention")
        return stored_config(config, self, names, initializer=True, reference=reference)

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("reference"), dict):
            config["reference"] = keras.saving.deserialize_keras_object(config["reference"])
        return cls(**config)
