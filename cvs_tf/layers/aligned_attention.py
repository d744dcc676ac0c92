"""AlignedAttention: the pairwise attention block of the CVS and M-CVS (thesis eqs. 3.1.11-3.1.14)."""

import keras
from keras import ops

from cvs_tf.layers.config import stored_config

__all__ = ["AlignedAttention"]


def pair_dim(layer, input_shape, names):
    """Validates the shapes of a pair input ((B, D), (B, D)) and returns D; ValueError otherwise."""
    first, second = names
    if (
        not isinstance(input_shape, (list, tuple))
        or len(input_shape) != 2
        or not all(isinstance(s, (list, tuple)) or hasattr(s, "as_list") for s in input_shape)
    ):
        raise ValueError(
            f"{layer.name}: {type(layer).__name__} expects a pair ({first}, {second}) of "
            f"(B, D) tensors; got input shape {input_shape!r}"
        )
    shapes = [tuple(s.as_list() if hasattr(s, "as_list") else s) for s in input_shape]
    for name, shape in zip(names, shapes):
        if len(shape) != 2:
            raise ValueError(
                f"{layer.name}: {name} must have rank 2, shape (B, D); got shape {shape}"
            )
        if shape[-1] is None:
            raise ValueError(f"{layer.name}: the last dimension D of {name} must be known; got {shape}")
    (ba, da), (bb, db) = shapes
    if da != db:
        raise ValueError(
            f"{layer.name}: {first} and {second} must have the same dimension D; "
            f"got {first} {shapes[0]} and {second} {shapes[1]}"
        )
    if ba is not None and bb is not None and ba != bb:
        raise ValueError(
            f"{layer.name}: {first} and {second} must have the same batch size; "
            f"got {shapes[0]} and {shapes[1]}"
        )
    return int(da)


def split_pair(layer, inputs, names):
    """Unpacks a (first, second) call input, checking it is a pair of the built dimension."""
    if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
        raise ValueError(
            f"{layer.name}: {type(layer).__name__} must be called on a pair ({names[0]}, {names[1]})"
        )
    first, second = inputs
    pair_dim(layer, (tuple(first.shape), tuple(second.shape)), names)
    if first.shape[-1] != layer.dim:
        raise ValueError(
            f"{layer.name}: built for D={layer.dim} but called with D={first.shape[-1]}"
        )
    return first, second


def seeded_initializer(initializer, offset):
    """A fresh copy of ``initializer`` for one kernel, so that no two kernels start equal.

    A Keras 3 random initializer returns the same values on every call, seeded or not (an
    unseeded one draws its seed once, at construction). So each kernel gets its own copy: an
    unseeded copy draws a new seed (reproducible under ``keras.utils.set_random_seed``), a
    seeded one uses ``seed + offset``. Non-random initializers are returned as they are.
    """
    config = initializer.get_config()
    if "seed" not in config:
        return initializer
    if isinstance(config["seed"], int):
        config["seed"] = config["seed"] + offset
    return type(initializer).from_config(config)


def add_square_kernel(layer, name, offset):
    """Adds a trainable (D, D) kernel ``name`` to ``layer`` (D = ``layer.dim``), without bias."""
    return layer.add_weight(name=name, shape=(layer.dim, layer.dim), trainable=True,
                            initializer=seeded_initializer(layer.kernel_initializer, offset))


def is_absent(term):
    """True for a dropped term passed to attention_from_terms: None or the number 0."""
    return term is None or (isinstance(term, (int, float)) and term == 0)


def l2_normalize(x):
    """x / max(‖x‖, 1e-6) over the last axis, exactly as ``tf.math.l2_normalize`` computes it."""
    return x * ops.rsqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), 1e-12))


def attended_cosine(g_a, alpha_a, g_b, alpha_b):
    """Cosine of the attended outputs ``g_a + α_a ⊙ g_a`` and ``g_b + α_b ⊙ g_b``; broadcasts."""
    return ops.sum(l2_normalize(g_a * (1.0 + alpha_a)) * l2_normalize(g_b * (1.0 + alpha_b)), axis=-1)


def tanh_term(terms, first, second):
    """tanh of the sum of the present terms; a zero tensor of the broadcast shape if none is."""
    present = [t for t in terms if not is_absent(t)]
    if not present:
        return ops.zeros_like(first * second)
    total = present[0]
    for t in present[1:]:
        total = total + t
    return ops.tanh(total)


def block_tanh(layer, p_first, p_second, g_first, g_second, w_product):
    """tanh(p_first + p_second + (g_first ⊙ g_second) W_product), the tanh term both blocks share;
    ``p_*`` are the caller's per-item projections (0/None when dropped), ``w_product`` None when dropped."""
    if not layer.built:
        raise ValueError(f"{layer.name}: build the layer (call it once) before attention_from_terms")
    terms = [p_first, p_second]
    if w_product is not None:
        terms.append(ops.matmul(g_first * g_second, w_product))
    return tanh_term(terms, g_first, g_second)


@keras.saving.register_keras_serializable(package="cvs_tf")
class AlignedAttention(keras.layers.Layer):
    """Aligned attention between two modalities' branch outputs (thesis §3.1.C, eqs. 3.1.11-3.1.14).

    With the row-vector convention (inputs are rows, kernels act on the right)::

        t  = tanh(g_a W_a + g_b W_b + (g_a ⊙ g_b) W_ab)      (3.1.11, the tanh term)
        e  = t W_e                                           (3.1.11)
        α  = softmax(e) over the D features                  (3.1.12)
        g_a' = g_a + α ⊙ g_a,   g_b' = g_b + α ⊙ g_b          (3.1.13, 3.1.14: residual skip)

    Both outputs share the same α. There are no biases (eq. 3.1.11). The kernels are (D, D)
    variables exposed as the attributes ``w_a``, ``w_b``, ``w_ab``, ``w_e``, created in
    ``build``.

    Ablation switches (thesis Fig. 25): ``use_w_a``, ``use_w_b``, ``use_w_ab`` drop the
    corresponding term; a dropped term has no variable at all (its attribute is ``None``), so
    each switch removes exactly D² trainable parameters. With every term dropped t = 0 and α is
    uniform, 1/D.

    Args:
      use_w_a, use_w_b, use_w_ab: keep the g_a W_a, g_b W_b and (g_a ⊙ g_b) W_ab terms.
      return_attention: also return α as a third output.
      kernel_initializer: initialiser of the four kernels (default Glorot uniform).

    Shapes: inputs ``(g_a, g_b)``, each (B, D) with the same D; outputs ``(g_a', g_b')``, each
    (B, D), plus α (B, D) when ``return_attention``.

    ``attention_from_terms(pa, pb, g_a, g_b)`` computes α from precomputed projections
    ``pa = g_a W_a`` and ``pb = g_b W_b`` (or 0/None) and broadcasts, e.g. pa, g_a (Nq, 1, D)
    with pb, g_b (1, Nc, D) gives α for every (query, candidate) pair, (Nq, Nc, D).
    ``project(g, side)`` makes those per-item terms and ``pair_score(pa, pb, g_a, g_b)`` the
    cosine of the two attended outputs (what the test-time protocols need).
    """

    def __init__(self, use_w_a=True, use_w_b=True, use_w_ab=True, return_attention=False,
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.use_w_a = bool(use_w_a)
        self.use_w_b = bool(use_w_b)
        self.use_w_ab = bool(use_w_ab)
        self.return_attention = bool(return_attention)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.dim = None
        self.w_a = self.w_b = self.w_ab = self.w_e = None

    def build(self, input_shape):
        self.dim = pair_dim(self, input_shape, ("g_a", "g_b"))
        self.w_a = add_square_kernel(self, "w_a", 0) if self.use_w_a else None
        self.w_b = add_square_kernel(self, "w_b", 1) if self.use_w_b else None
        self.w_ab = add_square_kernel(self, "w_ab", 2) if self.use_w_ab else None
        self.w_e = add_square_kernel(self, "w_e", 3)

    def attention_from_terms(self, pa, pb, g_a, g_b):
        """α = softmax(tanh(pa + pb + (g_a ⊙ g_b) W_ab) W_e), broadcasting over leading axes.

        ``pa``/``pb`` are ``g_a W_a``/``g_b W_b`` computed by the caller (pass 0 or None for a
        dropped term); the product term is computed here when ``use_w_ab``.
        """
        t = block_tanh(self, pa, pb, g_a, g_b, self.w_ab)
        return ops.softmax(ops.matmul(t, self.w_e), axis=-1)

    def project(self, g, side: int):
        """The per-item term of one input: ``g W_a`` (side 0, g_a) or ``g W_b`` (side 1, g_b); None when dropped."""
        kernel = (self.w_a, self.w_b)[side]
        return None if kernel is None else ops.matmul(g, kernel)

    def pair_score(self, pa, pb, g_a, g_b):
        """Cosine of the L2-normalised outputs ``g_a'``, ``g_b'`` from :meth:`project` terms; broadcasts."""
        alpha = self.attention_from_terms(pa, pb, g_a, g_b)
        return attended_cosine(g_a, alpha, g_b, alpha)

    def call(self, inputs):
        g_a, g_b = split_pair(self, inputs, ("g_a", "g_b"))
        pa = ops.matmul(g_a, self.w_a) if self.w_a is not None else None
        pb = ops.matmul(g_b, self.w_b) if self.w_b is not None else None
        alpha = self.attention_from_terms(pa, pb, g_a, g_b)
        out_a = g_a + alpha * g_a
        out_b = g_b + alpha * g_b
        if self.return_attention:
            return out_a, out_b, alpha
        return out_a, out_b

    def compute_output_shape(self, input_shape):
        shape_a, shape_b = (tuple(s) for s in input_shape)
        if self.return_attention:
            return shape_a, shape_b, shape_a
        return shape_a, shape_b

    def get_config(self):
        names = ("use_w_a", "use_w_b", "use_w_ab", "return_attention")
        return stored_config(super().get_config(), self, names, initializer=True)
