"""Hashed bag of word and character n-grams: strings to fixed-length count vectors, no vocabulary and no weights."""

import keras
import tensorflow as tf

from cvs_tf.layers.config import stored_config

__all__ = ["HashedText"]


@keras.saving.register_keras_serializable(package="cvs_tf")
class HashedText(keras.layers.Layer):
    """(N,) strings -> (N, dim) float32: L2-normalised ``log1p`` counts of hashed n-grams.

    The text is lower-cased (Unicode) and every run of characters that are not letters or
    digits becomes one space. Features: words, word pairs (``word_ngrams`` up to 2) and the
    character n-grams (``char_ngrams``, default 3) of `` text ``, each prefixed by its kind and
    hashed with FarmHash (``tf.strings.to_hash_bucket_fast``) into ``dim`` buckets. A row is
    computed from its own string only, so the result does not depend on the batch.
    """

    def __init__(self, dim=1024, word_ngrams=2, char_ngrams=3, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if int(dim) < 1 or int(word_ngrams) < 1 or int(char_ngrams) < 1:
            raise ValueError(f"need dim, word_ngrams, char_ngrams >= 1; got {dim}, {word_ngrams}, {char_ngrams}")
        self.dim, self.word_ngrams, self.char_ngrams = int(dim), int(word_ngrams), int(char_ngrams)

    def build(self, input_shape=None):
        self.built = True

    def tokens(self, texts):
        """Ragged (N, None) string tensor of the prefixed n-grams of each text."""
        text = tf.strings.lower(tf.convert_to_tensor(texts, tf.string), encoding="utf-8")
        text = tf.strings.strip(tf.strings.regex_replace(text, r"[^\p{L}\p{N}]+", " "))
        words = tf.strings.split(text)
        parts = [tf.strings.join(["w:", words])]
        for n in range(2, self.word_ngrams + 1):
            parts.append(tf.strings.join(["w:", tf.strings.ngrams(words, n, separator=" ")]))
        chars = tf.strings.unicode_split(tf.strings.join([" ", text, " "]), "UTF-8")
        parts.append(tf.strings.join(["c:", tf.strings.ngrams(chars, self.char_ngrams, separator="")]))
        return tf.concat(parts, axis=1)

    def call(self, texts):
        tokens = self.tokens(texts)
        ids = tf.strings.to_hash_bucket_fast(tokens.flat_values, self.dim)
        rows = tokens.nrows(out_type=tf.int64)
        flat = tokens.value_rowids() * self.dim + ids
        counts = tf.math.bincount(flat, minlength=rows * self.dim, maxlength=rows * self.dim, dtype=tf.float32)
        return tf.math.l2_normalize(tf.math.log1p(tf.reshape(counts, (-1, self.dim))), axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.dim)

    def get_config(self):
        return stored_config(super().get_config(), self, ("dim", "word_ngrams", "char_ngrams"))
