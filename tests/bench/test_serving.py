"""bench/serving.py: its helpers, and its quick run (rows, goals, docs untouched)."""

import numpy as np
import pytest

from bench import serving


def test_recall_at_k_counts_shared_items_and_ignores_missing():
    exact = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = np.array([[4, 3, 9, -1], [5, 6, 7, 8]])
    assert serving.recall_at_k(found, exact) == pytest.approx((2 / 4 + 1) / 2)


def test_gallery_is_unit_norm_class_clustered_and_seeded():
    x, y, c = serving.make_gallery(3000, 10, seed=0, chunk=1000)
    q, yq, _ = serving.make_gallery(50, 10, seed=1, centers=c)
    assert x.dtype == np.float32 and x.shape == (3000, serving.DIM)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    same = (x[y == 0] @ x[y == 0].T)[np.triu_indices(int((y == 0).sum()), 1)].mean()
    other = (x[y == 0] @ x[y == 1].T).mean()
    assert 0.1 < same < 0.35 and abs(other) < 0.05
    np.testing.assert_array_equal(serving.make_gallery(3000, 10, seed=0)[0], x)


def test_our_ranking_path_finds_the_exact_top_k():
    x, _, c = serving.make_gallery(2000, 10, seed=0)
    q, _, _ = serving.make_gallery(5, 10, seed=1, centers=c)
    _, rows = serving.ours_ranking(q, x, 10)
    want = np.argsort(-(q.astype(np.float64) @ x.T.astype(np.float64)), axis=1, kind="stable")[:, :10]
    assert serving.recall_at_k(rows, want) == 1.0


@pytest.mark.slow
def test_quick_run_reports_every_case_and_leaves_the_docs_alone():
    before = serving.DOCS_SERVING.read_text() if serving.DOCS_SERVING.exists() else None
    rows = serving.run(True)
    cases = [r["case"] for r in rows]
    assert cases[0].startswith("export") and rows[0]["goal"].endswith("met")
    assert cases[1].startswith("exact") and sum(c.startswith(("ivf", "hnsw")) for c in cases) == 6
    assert (serving.DOCS_SERVING.read_text() if serving.DOCS_SERVING.exists() else None) == before
