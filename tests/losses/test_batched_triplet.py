"""The batched (stacked-sets) triplet losses equal the per-set losses they stack, value for value."""

import numpy as np
import pytest
import tensorflow as tf

from cvs_tf.losses.triplet import (
    batched_cross_triplet_loss,
    batched_semi_hard_triplet_loss,
    cross_triplet_loss,
    semi_hard_triplet_loss,
)


@pytest.mark.parametrize("multi", [False, True])
def test_batched_equals_stacked_single_losses(multi):
    rng = np.random.default_rng(7)
    p, n, d, c = 5, 12, 6, 4
    emb = rng.normal(size=(p, n, d)).astype(np.float32)
    other = rng.normal(size=(p, n, d)).astype(np.float32)
    ids = rng.integers(0, c, size=(p, n))
    ids[0] = 0  # a single-class set (no negatives)
    ids[1] = np.arange(n)  # every label distinct (no positive pair)
    labels = np.eye(c, dtype=np.float32)[ids % c] if multi else ids
    margins = np.array([1.0, 0.5, 1.0, 2.0, 0.3], np.float32)
    got = batched_semi_hard_triplet_loss(labels, emb, margins).numpy()
    want = [semi_hard_triplet_loss(labels[i], emb[i], margins[i]).numpy() for i in range(p)]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    got = batched_cross_triplet_loss(labels, emb, labels[::-1], other, 1.0).numpy()
    want = [cross_triplet_loss(labels[i], emb[i], labels[::-1][i], other[i], 1.0).numpy() for i in range(p)]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_batched_gradients_equal_single_gradients():
    rng = np.random.default_rng(1)
    emb = tf.Variable(rng.normal(size=(3, 10, 4)).astype(np.float32))
    labels = rng.integers(0, 3, size=(3, 10))
    with tf.GradientTape(persistent=True) as tape:
        batched = tf.reduce_sum(batched_semi_hard_triplet_loss(labels, emb))
        single = tf.add_n([semi_hard_triplet_loss(labels[i], emb[i]) for i in range(3)])
    np.testing.assert_allclose(tape.gradient(batched, emb).numpy(), tape.gradient(single, emb).numpy(), atol=1e-6)
