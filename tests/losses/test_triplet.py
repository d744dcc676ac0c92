"""Tests for the semi-hard triplet losses: hand-derived fixtures, a brute-force numpy reference, edge cases."""

import ast
import os

import numpy as np
import pytest
import tensorflow as tf

from cvs_tf.losses import (
    cross_triplet_loss,
    pair_triplet_loss,
    pairwise_squared_distances,
    same_class_matrix,
    semi_hard_triplet_loss,
)

LOSSES_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "cvs_tf", "losses")


def _f(x):
    return float(x.numpy() if hasattr(x, "numpy") else x)


def _col(values):
    """1-D embeddings as an (N, 1) float32 array, so squared distances are squared differences."""
    return np.asarray(values, "float32").reshape(-1, 1)


def brute_force(anchor_labels, anchor_emb, other_labels, other_emb, margin=1.0, within=False):
    """Loops over every (anchor, positive) pair and applies the mining rule literally (float64)."""
    a = np.asarray(anchor_emb, np.float64)
    o = np.asarray(other_emb, np.float64)
    la, lo = np.asarray(anchor_labels), np.asarray(other_labels)
    if la.ndim == 1:
        same = la[:, None] == lo[None, :]
    else:
        same = (la.astype(float) @ lo.astype(float).T) > 0
    d = ((a[:, None, :] - o[None, :, :]) ** 2).sum(-1)
    losses = []
    for i in range(len(a)):
        for k in range(len(o)):
            if (within and i == k) or not same[i, k]:
                continue
            negs = [d[i, j] for j in range(len(o)) if not same[i, j] and not (within and i == j)]
            outside = [x for x in negs if x > d[i, k]]
            d_an = min(outside) if outside else (max(negs) if negs else 0.0)
            losses.append(max(d[i, k] - d_an + margin, 0.0))
    return float(np.mean(losses)) if losses else 0.0


class TestHandDerived:
    def test_intra(self):
        """labels [0, 0, 1, 1], 1-D embeddings [0, 1, 3, 6]; squared distances
        d01 = 1, d02 = 9, d03 = 36, d12 = 4, d13 = 25, d23 = 9.

        Pairs (anchor, positive), margin 1:
          (0,1): d_ap 1, negatives {9, 36}, closest > 1 is 9  → max(1 - 9 + 1, 0) = 0
          (1,0): d_ap 1, negatives {4, 25} → 4                → max(1 - 4 + 1, 0) = 0
          (2,3): d_ap 9, negatives {9, 4}: none > 9 (strict) → fallback farthest 9 → 9 - 9 + 1 = 1
          (3,2): d_ap 9, negatives {36, 25} → 25              → 0
        mean = 1/4. With margin 4: 0, 1 - 4 + 4 = 1, 9 - 9 + 4 = 4, 0 → 5/4.
        """
        labels = np.array([0, 0, 1, 1])
        emb = _col([0, 1, 3, 6])
        assert _f(semi_hard_triplet_loss(labels, emb)) == pytest.approx(0.25, abs=1e-6)
        assert _f(semi_hard_triplet_loss(labels, emb, margin=4.0)) == pytest.approx(1.25, abs=1e-6)

    def test_fallback_and_anchor_without_positive(self):
        """labels [0, 0, 1], embeddings [0, 4, 1]: d01 = 16, d02 = 1, d12 = 9.

          (0,1): d_ap 16, only negative 1 is not > 16 → fallback 1 → 16 - 1 + 1 = 16
          (1,0): d_ap 16, only negative 9             → fallback 9 → 16 - 9 + 1 = 8
        Anchor 2 has no positive and is ignored. mean = (16 + 8) / 2 = 12.
        """
        assert _f(semi_hard_triplet_loss([0, 0, 1], _col([0, 4, 1]))) == pytest.approx(12.0, abs=1e-5)

    def test_inter(self):
        """x: labels [0, 1] at [0, 2]; y: labels [0, 1, 0] at [1, 2, 3].

        Anchor x0 (label 0, at 0): y0 d 1 (pos), y1 d 4 (neg), y2 d 9 (pos).
          (x0,y0): d_ap 1, negative 4 > 1 → semi-hard 4 → max(1 - 4 + m, 0)
          (x0,y2): d_ap 9, negative 4 not > 9 → fallback 4 → 9 - 4 + m
        Anchor x1 (label 1, at 2): y0 d 1 (neg), y1 d 0 (pos), y2 d 1 (neg).
          (x1,y1): d_ap 0, negatives {1, 1} → 1 → max(0 - 1 + m, 0)
        m = 1: (0 + 6 + 0) / 3 = 2.   m = 2.5: (0 + 7.5 + 1.5) / 3 = 3.
        """
        args = ([0, 1], _col([0, 2]), [0, 1, 0], _col([1, 2, 3]))
        assert _f(cross_triplet_loss(*args)) == pytest.approx(2.0, abs=1e-6)
        assert _f(cross_triplet_loss(*args, margin=2.5)) == pytest.approx(3.0, abs=1e-6)

    def test_pair_combination_eq_3_1_6(self):
        """Same x and y as test_inter.

        intra(x): labels [0, 1] have no positive pair → 0.
        intra(y): labels [0, 1, 0] at [1, 2, 3]: (y0,y2) d_ap 4, negative y1 at d 1 → fallback
          → 4 - 1 + 1 = 4; (y2,y0) likewise 4 → 4.
        inter(x→y) = 2 (test_inter). total = 0.25·0 + 0.25·4 + 0.5·2 = 2.
        inter(y→x): (y0,x0) d_ap 1, negative x1 at 1 → fallback → 1; (y1,x1) d_ap 0, negative
          x0 at 4 → 0 - 4 + 1 → 0; (y2,x0) d_ap 9, negative x1 at 1 → 9 → mean 10/3.
        symmetric inter = (2 + 10/3) / 2 = 8/3; total = 1 + 0.5·8/3 = 7/3.
        """
        args = ([0, 1], _col([0, 2]), [0, 1, 0], _col([1, 2, 3]))
        out = {k: _f(v) for k, v in pair_triplet_loss(*args).items()}
        assert out == pytest.approx({"intra_x": 0.0, "intra_y": 4.0, "inter": 2.0, "total": 2.0}, abs=1e-5)
        sym = {k: _f(v) for k, v in pair_triplet_loss(*args, symmetric=True).items()}
        assert sym["inter"] == pytest.approx(8 / 3, abs=1e-5)
        assert sym["total"] == pytest.approx(7 / 3, abs=1e-5)
        custom = pair_triplet_loss(*args, gammas=(1.0, 0.0, 0.0), margins=(1.0, 2.0, 1.0))
        assert _f(custom["total"]) == pytest.approx(0.0, abs=1e-6)
        assert _f(custom["intra_y"]) == pytest.approx(5.0, abs=1e-5)  # 4 - 1 + 2 per pair

    def test_multi_hot_share_at_least_one_label(self):
        """Rows {0}, {0,1}, {1}, {2} at [0, 1, 3, 6]: positives 0~1 and 1~2 (0 and 2 share nothing).

        margin 6: (0,1) d_ap 1, negatives of 0 {9, 36} → 9 → 1 - 9 + 6 < 0 → 0;
        (1,0) d_ap 1, negatives of 1 {25} (2 is a positive) → 0; (1,2) d_ap 4 → 25 → 0;
        (2,1) d_ap 4, negatives of 2 {9 (item 0), 9 (item 3)} → 9 → 4 - 9 + 6 = 1. mean 1/4.
        """
        labels = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1]], "uint8")
        assert _f(semi_hard_triplet_loss(labels, _col([0, 1, 3, 6]), margin=6.0)) == pytest.approx(0.25, abs=1e-6)


class TestEdgeCases:
    def test_single_class_batch_uses_zero_negative_distance(self):
        """labels [0, 0, 0] at [0, 1, 3]: no negatives, so d_an = 0 and each pair costs d_ap + 1:
        (0,1),(1,0): 2; (0,2),(2,0): 10; (1,2),(2,1): 5 → 34 / 6 = 17/3 (TF-Addons gives the same)."""
        assert _f(semi_hard_triplet_loss([0, 0, 0], _col([0, 1, 3]))) == pytest.approx(17 / 3, abs=1e-5)

    @pytest.mark.parametrize("labels,emb", [
        ([3], [[0.5, 0.5]]),                      # batch of one
        ([0, 1, 2], [[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]]),  # every label distinct
        (np.zeros((0,), "int32"), np.zeros((0, 2), "float32")),  # empty batch
    ])
    def test_no_positive_pair_gives_zero(self, labels, emb):
        value = semi_hard_triplet_loss(np.asarray(labels), np.asarray(emb, "float32"))
        assert _f(value) == 0.0

    def test_cross_edge_cases(self):
        """No class in common → 0; one anchor and one same-class item, no negative → d_ap + margin."""
        assert _f(cross_triplet_loss([0], _col([0]), [1, 2], _col([1, 2]))) == 0.0
        assert _f(cross_triplet_loss([0], _col([0]), [0], _col([2]))) == pytest.approx(5.0)
        assert _f(cross_triplet_loss(np.zeros((0,), "int32"), np.zeros((0, 1), "float32"),
                                     [0], _col([2]))) == 0.0

    def test_all_zero_multi_hot_row_is_only_a_negative(self):
        """A row with no label shares nothing: [[1,0],[1,0],[0,0]] behaves as ids [0, 0, 1] (→ 12)."""
        labels = np.array([[1, 0], [1, 0], [0, 0]])
        assert _f(semi_hard_triplet_loss(labels, _col([0, 4, 1]))) == pytest.approx(12.0, abs=1e-5)

    def test_column_labels_are_squeezed(self):
        emb = _col([0, 1, 3, 6])
        assert _f(semi_hard_triplet_loss(np.array([[0], [0], [1], [1]]), emb)) == pytest.approx(0.25, abs=1e-6)

    def test_gradients_are_finite_in_degenerate_batches(self):
        for labels, values in [([0, 0, 0], [0, 0, 0]), ([0], [1]), ([0, 1], [0, 0]), ([0, 0, 1], [0, 0, 0])]:
            emb = tf.Variable(_col(values))
            with tf.GradientTape() as tape:
                loss = semi_hard_triplet_loss(labels, emb)
            grad = tape.gradient(loss, emb)
            assert np.isfinite(_f(loss))
            assert grad is None or np.all(np.isfinite(grad.numpy()))

    def test_rejects_bad_shapes(self):
        with pytest.raises(ValueError, match="shape"):
            semi_hard_triplet_loss([0, 1], np.zeros((2, 3, 1), "float32"))
        with pytest.raises(ValueError, match="same dimension"):
            cross_triplet_loss([0], np.zeros((1, 3), "float32"), [0], np.zeros((1, 4), "float32"))
        with pytest.raises(ValueError, match="both"):
            same_class_matrix([0, 1], np.eye(2))
        with pytest.raises(ValueError, match="3 values"):
            pair_triplet_loss([0], _col([0]), [0], _col([0]), gammas=(1.0, 1.0))


class TestAgainstBruteForce:
    @pytest.mark.parametrize("seed", range(6))
    def test_intra_random(self, seed):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(2, 20))
        labels = rng.integers(0, 4, size=n)
        emb = (rng.normal(size=(n, 5)) * rng.uniform(0.3, 2.0)).astype("float32")
        for margin in (1.0, 0.2):
            expected = brute_force(labels, emb, labels, emb, margin, within=True)
            assert _f(semi_hard_triplet_loss(labels, emb, margin)) == pytest.approx(expected, rel=1e-5, abs=1e-5)

    @pytest.mark.parametrize("seed", range(6))
    def test_cross_random(self, seed):
        rng = np.random.default_rng(100 + seed)
        nx, ny = int(rng.integers(1, 12)), int(rng.integers(1, 15))
        lx, ly = rng.integers(0, 3, size=nx), rng.integers(0, 3, size=ny)
        ex = rng.normal(size=(nx, 4)).astype("float32")
        ey = (rng.normal(size=(ny, 4)) * 1.5).astype("float32")
        expected = brute_force(lx, ex, ly, ey, 1.0)
        assert _f(cross_triplet_loss(lx, ex, ly, ey)) == pytest.approx(expected, rel=1e-5, abs=1e-5)

    @pytest.mark.parametrize("seed", range(3))
    def test_multi_hot_random(self, seed):
        rng = np.random.default_rng(200 + seed)
        labels = (rng.random((12, 4)) < 0.35).astype("uint8")
        emb = rng.normal(size=(12, 3)).astype("float32")
        expected = brute_force(labels, emb, labels, emb, 1.0, within=True)
        assert _f(semi_hard_triplet_loss(labels, emb)) == pytest.approx(expected, rel=1e-5, abs=1e-5)

    def test_one_hot_equals_class_ids(self):
        rng = np.random.default_rng(9)
        ids = rng.integers(0, 4, size=16)
        emb = rng.normal(size=(16, 6)).astype("float32")
        np.testing.assert_allclose(semi_hard_triplet_loss(np.eye(4)[ids], emb),
                                   semi_hard_triplet_loss(ids, emb), atol=1e-6)

    def test_inside_tf_function_with_dynamic_batch(self):
        fn = tf.function(semi_hard_triplet_loss, input_signature=[
            tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, 5], tf.float32)])
        rng = np.random.default_rng(4)
        for n in (1, 7, 13):
            labels = rng.integers(0, 3, size=n).astype("int32")
            emb = rng.normal(size=(n, 5)).astype("float32")
            expected = brute_force(labels, emb, labels, emb, 1.0, within=True)
            assert _f(fn(labels, emb)) == pytest.approx(expected, rel=1e-5, abs=1e-5)


def test_pairwise_squared_distances():
    """Rows [0,0], [3,4] against [0,0], [1,0]: [[0, 1], [25, (3-1)² + 4² = 20]]; never negative."""
    d = pairwise_squared_distances(np.array([[0, 0], [3, 4]], "float32"), np.array([[0, 0], [1, 0]], "float32"))
    np.testing.assert_allclose(d, [[0, 1], [25, 20]], atol=1e-6)
    x = np.full((3, 4), 1e3, "float32") + np.float32(1e-4)
    assert np.all(pairwise_squared_distances(x, x).numpy() >= 0)


@pytest.mark.parametrize("name", ["triplet.py", "classification.py", "reconstruction.py"])
def test_pure_loss_modules_import_only_tensorflow(name):
    """These modules must run on TF 2.15 (the oracle lane): no keras, no cvs_tf imports."""
    with open(os.path.join(LOSSES_DIR, name)) as fh:
        tree = ast.parse(fh.read())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported == {"tensorflow"}


def test_float32_and_float64_mining_agree_on_tie_heavy_batches():
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 4, size=40)
    emb = np.round(rng.normal(size=(40, 2)) * 2) / 2           # a coarse grid: many equal distances
    want = brute_force(labels, emb, labels, emb, within=True)
    got32 = _f(semi_hard_triplet_loss(labels, emb.astype(np.float32)))
    got64 = _f(semi_hard_triplet_loss(labels, emb.astype(np.float64)))
    assert got32 == pytest.approx(want, abs=1e-5) and got64 == pytest.approx(want, abs=1e-9)
