"""The packed-positive mining tiers give the full cube's values and gradients, and each tier is reached."""

import numpy as np
import pytest
import tensorflow as tf

from cvs_tf.losses import triplet
from cvs_tf.losses.triplet import (
    POSITIVE_TIERS,
    batched_cross_triplet_loss,
    batched_semi_hard_triplet_loss,
)
from tests.losses.test_triplet import brute_force

N = 96  # above every tier, so all of them are candidates


def _labels(rng, p, n, classes):
    """(p, n) ids; ``classes`` controls the positives per anchor (about n / classes)."""
    return rng.integers(0, classes, size=(p, n))


def _loss_and_grad(labels, emb, other=None, other_labels=None):
    emb = tf.Variable(emb)
    with tf.GradientTape() as tape:
        if other is None:
            loss = batched_semi_hard_triplet_loss(labels, emb, 1.0)
        else:
            loss = batched_cross_triplet_loss(labels, emb, other_labels, other, 1.0)
        total = tf.reduce_sum(loss)
    return loss.numpy(), tape.gradient(total, emb).numpy()


def _most_positives(labels, within):
    same = labels[:, :, None] == labels[:, None, :]
    counts = same.sum(-1) - (1 if within else 0)
    return int(counts.max())


@pytest.mark.parametrize("classes", [24, 8, 3, 1])
@pytest.mark.parametrize("ties", [False, True])
def test_each_tier_equals_the_full_cube_and_the_brute_force(classes, ties, monkeypatch):
    """24 classes fit the 16 tier, 8 the 32 tier, 3 the 64 tier, 1 class only the full cube."""
    rng = np.random.default_rng(classes)
    labels = _labels(rng, 2, N, classes)
    emb = rng.normal(size=(2, N, 3)).astype(np.float32)
    if ties:                                    # a coarse grid makes many distances exactly equal
        emb = np.round(emb * 2) / 2
    most = _most_positives(labels, within=True)
    expected_tier = next((k for k in POSITIVE_TIERS if most <= k), None)
    assert expected_tier == {24: 16, 8: 32, 3: 64, 1: None}[classes], most

    got, got_grad = _loss_and_grad(labels, emb)
    monkeypatch.setattr(triplet, "POSITIVE_TIERS", ())        # force the full cube
    full, full_grad = _loss_and_grad(labels, emb)
    np.testing.assert_allclose(got, full, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got_grad, full_grad, rtol=1e-6, atol=1e-6)
    want = [brute_force(labels[i], emb[i], labels[i], emb[i], within=True) for i in range(2)]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_cross_sets_of_different_sizes_and_multi_hot(monkeypatch):
    rng = np.random.default_rng(3)
    na, nb, c = 40, N, 12
    ids_a, ids_b = rng.integers(0, c, size=(2, na)), rng.integers(0, c, size=(2, nb))
    ids_a[1, 0] = c + 5                          # an anchor with no positive at all
    eye = np.eye(c + 6, dtype=np.float32)
    la, lb = eye[ids_a], eye[ids_b]
    la[0, 1] += eye[(ids_a[0, 1] + 1) % c]      # a two-label anchor
    ea = rng.normal(size=(2, na, 4)).astype(np.float32)
    eb = rng.normal(size=(2, nb, 4)).astype(np.float32)
    got, got_grad = _loss_and_grad(la, ea, eb, lb)
    monkeypatch.setattr(triplet, "POSITIVE_TIERS", ())
    full, full_grad = _loss_and_grad(la, ea, eb, lb)
    np.testing.assert_allclose(got, full, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got_grad, full_grad, rtol=1e-6, atol=1e-6)
    want = [brute_force(la[i], ea[i], lb[i], eb[i]) for i in range(2)]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("jit", [False, True])
def test_tiers_compile_and_match_under_xla(jit):
    rng = np.random.default_rng(5)
    labels = tf.constant(_labels(rng, 3, N, 20))
    emb = tf.constant(rng.normal(size=(3, N, 8)).astype(np.float32))
    eager = batched_semi_hard_triplet_loss(labels, emb).numpy()
    compiled = tf.function(batched_semi_hard_triplet_loss, jit_compile=jit)(labels, emb).numpy()
    np.testing.assert_allclose(compiled, eager, rtol=1e-5, atol=1e-6)
