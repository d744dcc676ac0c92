"""loss_terms mines the pairs in groups, one after the other (O(B³) memory per group); the terms equal the all-pairs form."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cvs_tf.config import RunConfig
from cvs_tf.data.store import load_feature_set
from cvs_tf.models import build_model, objective
from cvs_tf.models.objective import after, pair_chunks
from tests.conftest import make_toy_featureset


def test_pair_chunks_by_batch_size():
    pairs = [(str(i), "x") for i in range(10)]
    assert pair_chunks(pairs, 128) == [[p] for p in pairs]          # 84 MB of cubes per pair: one at a time
    assert pair_chunks(pairs, 64) == [pairs[:6], pairs[6:]]
    assert pair_chunks(pairs, 32) == [pairs] == pair_chunks(pairs, None)


def test_after_is_an_exact_zero_and_no_gradient_path():
    t, prev = tf.constant([1.5, -2.0]), tf.constant([float("inf"), 3.0])
    np.testing.assert_array_equal(after(t, prev).numpy(), t.numpy())
    with tf.GradientTape() as tape:
        tape.watch(prev)
        y = tf.reduce_sum(after(t, prev))
    assert tape.gradient(y, prev) is None


def test_grouped_terms_equal_the_all_pairs_terms(tmp_path, monkeypatch):
    fs = load_feature_set(make_toy_featureset(tmp_path / "t", n_classes=8, n_train=160))
    cfg = RunConfig()
    cfg.model.dim = 8
    keras.utils.set_random_seed(0)
    model = build_model(cfg.validate(), fs)
    rng = np.random.default_rng(0)
    b = 128
    labels = {m: tf.constant(rng.integers(0, 8, b), tf.int32) for m in model.modalities}
    logits = {m: tf.constant(rng.normal(size=(b, 8)), tf.float32) for m in model.modalities}
    emb = {objective.pair_key(a, c): tuple(tf.math.l2_normalize(tf.constant(rng.normal(size=(b, 8)), tf.float32), -1)
                                           for _ in range(2)) for a, c in model.active_pairs()}
    assert len(pair_chunks(model.active_pairs(), b)) == 3
    grouped = model.loss_terms(labels, logits, emb)
    monkeypatch.setattr(objective, "MINING_CHUNK_BYTES", 1 << 40)
    whole = model.loss_terms(labels, logits, emb)
    assert grouped.keys() == whole.keys() and len(grouped) == 3 + 3 * 3
    for k in whole:
        assert float(grouped[k]) == pytest.approx(float(whole[k]), abs=1e-6), k
