"""Text encoders: hashed word and character n-grams (no weights, works offline), and a keras-hub preset where keras-hub is installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cvs_tf.data.encoders import Encoder, EncoderError, ItemError, require_modules

DEFAULT_DIM = 1024


def check_text(value: str) -> str:
    """The text itself; ItemError for an empty (or whitespace-only) text."""
    if not value or not value.strip():
        raise ItemError("empty text")
    return value


class StringEncoder(Encoder):
    """A Keras-native text encoder: :meth:`embed` maps a (N,) string tensor to (N, dim); ``tracked`` holds its weights."""

    kind = "text"
    keras_native = True
    tracked = None

    def embed(self, texts):
        raise NotImplementedError

    def read(self, value: str, base: Path) -> str:
        return check_text(value)

    def encode(self, items: list) -> np.ndarray:
        import tensorflow as tf

        return np.asarray(self.embed(tf.constant(items, tf.string)), dtype=np.float32)

    def raw_fn(self):
        import tensorflow as tf

        spec = tf.TensorSpec((None,), tf.string, name="texts")
        return self.embed, spec, self.tracked, f"(N,) UTF-8 strings; {self.preprocessing}"


class HashedTextEncoder(StringEncoder):
    """:class:`~cvs_tf.layers.hashed_text.HashedText`: ARG is the dimension [1024]."""

    def __init__(self, name: str, arg: str | None = None):
        super().__init__(name, arg)
        from cvs_tf.layers.hashed_text import HashedText

        try:
            dim = DEFAULT_DIM if arg is None else int(arg)
        except ValueError:
            dim = 0
        if not 1 <= dim <= 1 << 20:
            raise EncoderError(f"encoder {self.spec}: the dimension after '@' must be an integer in [1, {1 << 20}]")
        self.tracked = HashedText(dim)
        self.tracked.build((None,))
        self.dim = dim
        self.preprocessing = ("lower-cased, non-alphanumeric runs to one space; words, word pairs and character "
                              f"3-grams hashed (FarmHash) into {dim} buckets; log1p counts, L2-normalised")

    def embed(self, texts):
        return self.tracked(texts)

    def versions(self) -> dict:
        import tensorflow as tf

        return {"tensorflow": tf.__version__, "weights_sha256": None}


class KerasHubTextEncoder(StringEncoder):
    """A keras-hub text backbone preset (ARG: the preset name or a local preset folder), mean-pooled over tokens."""

    def __init__(self, name: str, arg: str | None = None):
        super().__init__(name, arg)
        require_modules(self.spec, [("keras_hub", "keras-hub")], "pip install keras-hub")
        if arg is None:
            raise EncoderError("encoder keras-hub needs a preset: keras-hub@PRESET (a name or a local preset folder)")
        import keras_hub

        try:
            self.preprocessor = keras_hub.models.TextClassifierPreprocessor.from_preset(arg)
            self.tracked = keras_hub.models.Backbone.from_preset(arg)
        except Exception as exc:  # keras-hub raises many types for a missing or foreign preset
            raise EncoderError(f"encoder {self.spec}: cannot load ({' '.join(str(exc).split())[:200]})") from None
        self.dim = int(self.tracked.hidden_dim)
        self.preprocessing = f"keras-hub preprocessor of preset {arg}; mean of the token states over the padding mask"

    def embed(self, texts):
        import tensorflow as tf

        x = self.preprocessor(texts)
        x = x[0] if isinstance(x, tuple) else x
        states = self.tracked(x)
        mask = tf.cast(x["padding_mask"], states.dtype)[..., None]
        return tf.reduce_sum(states * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)

    def versions(self) -> dict:
        import keras_hub

        from cvs_tf.utils.weights import weights_sha256

        return {"keras_hub": keras_hub.__version__, "weights_sha256": weights_sha256(self.tracked)}
