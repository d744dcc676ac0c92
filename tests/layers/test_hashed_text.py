"""HashedText: hashed word and character n-grams of strings, per row, unit length; config round trip."""

import numpy as np
import pytest
import tensorflow as tf

from cvs_tf.layers import HashedText
from tests.layers.layer_checks import run_serialization_test


def test_tokens_are_prefixed_words_word_pairs_and_character_trigrams():
    tokens = [t.decode() for t in HashedText(16).tokens(tf.constant(["Hi, YOU!"]))[0].numpy()]
    assert tokens == ["w:hi", "w:you", "w:hi you", "c: hi", "c:hi ", "c:i y", "c: yo", "c:you", "c:ou "]


def test_rows_do_not_depend_on_the_batch_and_have_unit_length():
    layer = HashedText(64)
    texts = ["Un vélo ROUGE", "a red bike", "x"]
    whole = layer(tf.constant(texts)).numpy()
    np.testing.assert_allclose(whole[1], layer(tf.constant(texts[1:2])).numpy()[0], atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(whole, axis=1), 1, atol=1e-6)
    assert whole.shape == (3, 64)
    again = layer(tf.constant(["A red bike!"])).numpy()[0]
    assert float(whole[1] @ again) > float(whole[0] @ again)     # shared n-grams, higher cosine
    # counts by hand: "x" has the word x and the trigram " x " -> two buckets (or one, on a collision)
    ids = tf.strings.to_hash_bucket_fast(["w:x", "c: x "], 64).numpy()
    want = np.zeros(64)
    np.add.at(want, ids, 1)
    want = np.log1p(want) / np.linalg.norm(np.log1p(want))
    np.testing.assert_allclose(whole[2], want, atol=1e-6)


def test_config_round_trip_and_bad_arguments():
    layer = HashedText(32, word_ngrams=3, char_ngrams=4)
    clone = run_serialization_test(layer)
    assert (clone.dim, clone.word_ngrams, clone.char_ngrams) == (32, 3, 4) and not clone.trainable
    x = tf.constant(["some text here", "more"])
    np.testing.assert_array_equal(layer(x).numpy(), clone(x).numpy())
    with pytest.raises(ValueError, match="dim"):
        HashedText(0)
