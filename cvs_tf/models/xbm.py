"""Cross-batch memory (XBM, Wang et al., CVPR 2020): a ring buffer of past pair embeddings and labels per trained pair.

Each trained pair ``a__b`` of the model's plan has a queue of the last ``size`` rows of its
(all-gathered, attended) embeddings of a and b with their labels, in non-trainable variables
created in ``build``. :meth:`CrossBatchMemory.read` gives the pair loss the queue as it stood before
this step (no gradient flows into it); :meth:`CrossBatchMemory.enqueue` then writes the step's rows
over the oldest ones (wrap-around). A pair's rows are ``valid`` once written, and only after the
pair's first ``warmup`` training steps. Under a distribution strategy every replica enqueues the
same all-gathered global batch, and the variables keep the first replica's write.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from cvs_tf.layers.config import stored_config
from cvs_tf.losses.registry import Memory
from cvs_tf.models.objective import pair_key

__all__ = ["CrossBatchMemory", "memory_for"]

_SIDES = ("x", "y")


@keras.saving.register_keras_serializable(package="cvs_tf")
class CrossBatchMemory(keras.layers.Layer):
    """The queues of ``pairs`` (pair keys): ``size`` rows each of ``dim``-dimensional embeddings of both sides,
    labels as int32 ids (``classes`` 0) or float32 multi-hot rows of ``classes`` columns, and per pair the
    next row to write (``ptr``), the rows written (``fill``, at most ``size``) and the steps seen (``steps``)."""

    def __init__(self, size: int, warmup: int = 0, pairs=(), dim: int = 512, classes: int = 0, **kwargs):
        super().__init__(**kwargs)
        if int(size) < 1:
            raise ValueError(f"a cross-batch memory needs size >= 1, got {size}")
        self.size, self.warmup, self.dim, self.classes = int(size), int(warmup), int(dim), int(classes)
        self.pairs = [str(k) for k in pairs]

    def build(self, input_shape=None):
        label_shape, label_dtype = ((self.size, self.classes), "float32") if self.classes else ((self.size,), "int32")
        object.__setattr__(self, "slots", {})  # (untracked: add_weight tracks the variables)
        for key in self.pairs:
            slot = {}
            for side in _SIDES:
                slot[f"e{side}"] = self._state(f"{key}_e{side}", (self.size, self.dim), "float32")
                slot[f"y{side}"] = self._state(f"{key}_y{side}", label_shape, label_dtype)
            for name in ("ptr", "fill", "steps"):
                slot[name] = self._state(f"{key}_{name}", (), "int32")
            self.slots[key] = slot
        self.built = True

    def _state(self, name, shape, dtype):
        return self.add_weight(shape=shape, initializer="zeros", dtype=dtype, trainable=False, name=name,
                               aggregation="only_first_replica")

    def read(self, keys) -> dict:
        """``{key: Memory}`` of the pair keys ``keys``: the queues as they stand, without gradient, and
        ``valid`` (N,) bool, the written rows once the pair has trained ``warmup`` steps."""
        out = {}
        for key in keys:
            s = self.slots[key]
            valid = tf.logical_and(tf.range(self.size) < s["fill"].value, s["steps"].value >= self.warmup)
            yx, ex, yy, ey = (tf.stop_gradient(tf.identity(s[n].value)) for n in ("yx", "ex", "yy", "ey"))
            out[key] = Memory(yx, ex, yy, ey, valid)
        return out

    def enqueue(self, key: str, yx, ex, yy, ey) -> None:
        """Write one step's rows of pair ``key`` over the oldest ones (the last ``size`` rows if more), and count the step."""
        s = self.slots[key]
        rows = ex.shape[0] if ex.shape[0] is not None else tf.shape(ex)[0]
        rows = min(rows, self.size) if isinstance(rows, int) else tf.minimum(rows, self.size)
        at = tf.math.floormod(s["ptr"].value + tf.range(rows), self.size)[:, None]
        for name, value in (("yx", yx), ("ex", ex), ("yy", yy), ("ey", ey)):
            var = s[name]
            value = tf.stop_gradient(tf.cast(value, var.dtype))[-rows:] if isinstance(rows, int) else \
                tf.stop_gradient(tf.cast(value, var.dtype))[tf.shape(value)[0] - rows:]
            var.assign(tf.tensor_scatter_nd_update(var.value, at, value))
        s["ptr"].assign(tf.math.floormod(s["ptr"].value + rows, self.size))
        s["fill"].assign(tf.minimum(s["fill"].value + rows, self.size))
        s["steps"].assign(s["steps"].value + 1)

    def get_config(self):
        return stored_config(super().get_config(), self, ("size", "warmup", "pairs", "dim", "classes"))


def memory_for(model) -> CrossBatchMemory | None:
    """The built cross-batch memory of ``model``'s trained pairs (every stage), None when ``xbm_size`` is 0."""
    options = model.loss_options
    if not options.get("xbm_size"):
        return None
    keys = [pair_key(a, b) for stage in model.plan for a, b in stage["pairs"]]
    layer = CrossBatchMemory(options["xbm_size"], options["xbm_warmup"], list(dict.fromkeys(keys)), model.dim,
                             model.num_classes if model.multi_label else 0, name="xbm", dtype="float32")
    layer.build()
    return layer
