"""The ``dscmr`` kind on hand-worked batches (cvs_tf/losses/kinds/dscmr.py)."""

from math import exp, log

import numpy as np
import pytest

from cvs_tf.losses.kinds.dscmr import dscmr, similarity_likelihood

SP_HALF = log(1 + exp(0.5))  # softplus(θ) at θ = ½ cos = ½ (the same item)


def _run(yx, ex, yy, ey, invariance=0.7):
    out = dscmr(np.asarray([yx]), np.asarray([ex], np.float32), np.asarray([yy]), np.asarray([ey], np.float32),
                {"invariance": invariance})
    return {t: float(v[0]) for t, v in out.items()}


def test_aligned_orthonormal_items():
    # θ = ½ I, S = I for each of the three J terms: two entries (θ = ½, S = 1) and two (θ = 0, S = 0).
    j = ((SP_HALF - 0.5) + log(2)) / 2
    out = _run([0, 1], np.eye(2), [0, 1], np.eye(2))
    assert out == pytest.approx({"similarity": 3 * j, "invariance": 0.0, "total": 3 * j}, rel=1e-6)


def test_swapped_items_pay_invariance_and_inter_similarity():
    # y = x reversed: inter θ = ½ [[0, 1], [1, 0]] with S = I; intra terms as aligned; ||e1 - e2||² = 2.
    j_intra = ((SP_HALF - 0.5) + log(2)) / 2
    j_inter = (2 * log(2) + 2 * SP_HALF) / 4
    out = _run([0, 1], np.eye(2), [0, 1], np.eye(2)[::-1])
    assert out["similarity"] == pytest.approx(j_inter + 2 * j_intra, rel=1e-6)
    assert out["invariance"] == pytest.approx(2.0)
    assert out["total"] == pytest.approx(j_inter + 2 * j_intra + 0.7 * 2.0, rel=1e-6)


def test_multi_hot_similarity_and_an_unlabelled_row():
    # rows 0 and 1 share class 1; row 2 has no label (S = 0 with everything, itself included).
    labels = np.array([[[1, 1], [0, 1], [0, 0]]], np.float32)
    u = np.eye(3, dtype=np.float32)[None]
    # θ = ½ I; S = [[1, 1, 0], [1, 1, 0], [0, 0, 0]]: diagonal θ = ½ (S 1, 1, 0), off-diagonal θ = 0.
    want = (2 * (SP_HALF - 0.5) + SP_HALF + 6 * log(2)) / 9
    assert float(similarity_likelihood(labels, u, labels, u)[0]) == pytest.approx(want, rel=1e-6)


def test_large_similarities_are_stable():
    big = np.full((1, 2, 2), 60.0, np.float32)  # not unit vectors: θ = 3600, where a naive log(1 + e^θ) is inf
    value = similarity_likelihood(np.array([[0, 0]]), big, np.array([[0, 0]]), big)
    assert float(value[0]) == pytest.approx(0.0, abs=1e-3)
