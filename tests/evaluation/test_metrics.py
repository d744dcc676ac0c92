"""Tests for cvs_tf.evaluation.metrics: mAP@K against a naive per-query loop, the thesis example, chance level."""

import itertools

import numpy as np
import pytest

from cvs_tf.evaluation.metrics import (
    chance_map_at_k,
    map_at_k,
    map_at_k_from_scores,
    partner_ranks,
    recall_at_k,
    recall_at_k_from_scores,
    relevance_counts,
    top_k_indices,
)

# --------------------------------------------------------------------------- naive reference


def _relevant(yq_i, yr_j):
    if np.ndim(yq_i) == 0:
        return yq_i == yr_j
    return bool(np.any(np.asarray(yq_i).astype(bool) & np.asarray(yr_j).astype(bool)))


def naive_ap_from_scores(scores, yq, yr, k):
    """One query at a time, plain Python: sort by (-score, index), walk the top K."""
    aps = []
    n = scores.shape[1]
    kk = n if k is None else min(k, n)
    for i in range(scores.shape[0]):
        ranked = sorted(range(n), key=lambda j: (-scores[i, j], j))
        hits, total = 0, 0.0
        for rank, j in enumerate(ranked[:kk], start=1):
            if _relevant(yq[i], yr[j]):
                hits += 1
                total += hits / rank
        aps.append(total / hits if hits else 0.0)
    return np.array(aps)


def naive_ap(q, r, yq, yr, k):
    """Cosine similarity pair by pair, then the naive ranking above."""
    sims = np.empty((len(q), len(r)))
    for i in range(len(q)):
        for j in range(len(r)):
            sims[i, j] = np.dot(q[i], r[j]) / (np.linalg.norm(q[i]) * np.linalg.norm(r[j]))
    return naive_ap_from_scores(sims, yq, yr, k)


def tied_embeddings(rng, n, d=12, nnz=4):
    """Rows of ±1 with exactly 4 non-zeros: norm 2, so every cosine is an exact multiple of 1/4.

    Many exact ties, and the float64 values are identical however the dot product is summed.
    """
    x = np.zeros((n, d))
    for i in range(n):
        cols = rng.choice(d, size=nnz, replace=False)
        x[i, cols] = rng.choice([-1.0, 1.0], size=nnz)
    return x


# --------------------------------------------------------------------------- against the naive loop


@pytest.mark.parametrize("k", [1, 3, 10, 50, None])
def test_matches_naive_random(k):
    rng = np.random.default_rng(1)
    q, r = rng.normal(size=(23, 7)), rng.normal(size=(31, 7))
    yq = rng.integers(0, 5, size=23)
    yq[:3] = 9                                     # no relevant retrieval item at all
    yr = rng.integers(0, 5, size=31)
    m, per = map_at_k(q, r, yq, yr, k, return_per_query=True)
    ref = naive_ap(q, r, yq, yr, k)
    np.testing.assert_allclose(per, ref, rtol=0, atol=1e-12)
    assert abs(m - ref.mean()) <= 1e-12
    assert np.all(per[:3] == 0.0)


@pytest.mark.parametrize("k", [1, 2, 5, 17, 40, None])
def test_matches_naive_with_exact_ties(k):
    rng = np.random.default_rng(2)
    q, r = tied_embeddings(rng, 19), tied_embeddings(rng, 29)
    r[10:14] = r[3]                                # duplicates: ties at every rank they occupy
    yq, yr = rng.integers(0, 3, size=19), rng.integers(0, 3, size=29)
    sims = _l2(q) @ _l2(r).T
    assert _has_mixed_tie(sims, yq, yr), "fixture must contain ties between relevant and not"
    _, per = map_at_k(q, r, yq, yr, k, return_per_query=True)
    np.testing.assert_allclose(per, naive_ap(q, r, yq, yr, k), rtol=0, atol=1e-12)


def test_tie_rule_is_lower_index_first():
    # three items with the same score: relevant at index 2 only; lower index wins the tie
    scores = np.array([[0.5, 0.5, 0.5]])
    yr = np.array([0, 0, 1])
    assert map_at_k_from_scores(scores, np.array([1]), yr, None) == pytest.approx(1 / 3)
    assert map_at_k_from_scores(scores, np.array([1]), yr, 2) == 0.0
    # the relevant item first in index order wins the tie, whichever end of the run it is at
    assert map_at_k_from_scores(scores, np.array([1]), np.array([1, 0, 0]), None) == 1.0
    assert map_at_k_from_scores(scores, np.array([1]), np.array([0, 1, 0]), None) == 0.5
    np.testing.assert_array_equal(top_k_indices(scores, 2), [[0, 1]])
    # boundary tie: k-th score tied with an item outside -> the lower indices are kept
    s = np.array([[0.1, 0.9, 0.5, 0.5, 0.5, 0.5]])
    np.testing.assert_array_equal(top_k_indices(s, 3), [[1, 2, 3]])
    np.testing.assert_array_equal(top_k_indices(s[:, ::-1].copy(), 3), [[4, 0, 1]])


def test_k_larger_than_retrieval_set_equals_all():
    rng = np.random.default_rng(3)
    q, r = rng.normal(size=(9, 4)), rng.normal(size=(6, 4))
    yq, yr = rng.integers(0, 2, size=9), rng.integers(0, 2, size=6)
    big = map_at_k(q, r, yq, yr, 1000, return_per_query=True)[1]
    np.testing.assert_allclose(big, naive_ap(q, r, yq, yr, None), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(big, map_at_k(q, r, yq, yr, None, return_per_query=True)[1])
    assert map_at_k(q, r, yq, yr, "all") == map_at_k(q, r, yq, yr, None)


@pytest.mark.parametrize("k", [4, None])
def test_multilabel_matches_naive(k):
    rng = np.random.default_rng(4)
    q, r = rng.normal(size=(17, 6)), rng.normal(size=(25, 6))
    yq = (rng.random((17, 5)) < 0.25).astype(np.uint8)
    yr = (rng.random((25, 5)) < 0.25).astype(np.uint8)
    yq[0] = 0                                      # a query with no label: nothing is relevant
    _, per = map_at_k(q, r, yq, yr, k, return_per_query=True)
    np.testing.assert_allclose(per, naive_ap(q, r, yq, yr, k), rtol=0, atol=1e-12)
    assert per[0] == 0.0
    # one-hot multi-label equals the single-label result
    ys_q, ys_r = rng.integers(0, 5, 17), rng.integers(0, 5, 25)
    eye = np.eye(5, dtype=np.uint8)
    assert map_at_k(q, r, eye[ys_q], eye[ys_r], k) == pytest.approx(map_at_k(q, r, ys_q, ys_r, k), abs=1e-15)


@pytest.mark.parametrize("k", [3, None])
def test_chunking_does_not_change_the_result(k):
    rng = np.random.default_rng(5)
    q, r = tied_embeddings(rng, 40), tied_embeddings(rng, 33)
    yq, yr = rng.integers(0, 4, 40), rng.integers(0, 4, 33)
    whole = map_at_k(q, r, yq, yr, k, return_per_query=True)[1]
    for chunk in (1, 7, 64):
        np.testing.assert_array_equal(map_at_k(q, r, yq, yr, k, chunk_size=chunk, return_per_query=True)[1], whole)


def test_from_scores_matches_naive_and_map_at_k():
    rng = np.random.default_rng(6)
    s = rng.integers(-3, 4, size=(15, 20)).astype(np.float32)       # integer scores: many ties
    yq, yr = rng.integers(0, 3, 15), rng.integers(0, 3, 20)
    for k in (1, 5, 19, 20, None):
        _, per = map_at_k_from_scores(s, yq, yr, k, return_per_query=True)
        np.testing.assert_allclose(per, naive_ap_from_scores(s, yq, yr, k), rtol=0, atol=1e-12)
    # wide rows (past any small-array sort path) with heavy ties
    s = rng.integers(-4, 5, size=(12, 300)).astype(np.float64)
    yq, yr = rng.integers(0, 4, 12), rng.integers(0, 4, 300)
    for k in (50, None):
        _, per = map_at_k_from_scores(s, yq, yr, k, return_per_query=True)
        np.testing.assert_allclose(per, naive_ap_from_scores(s, yq, yr, k), rtol=0, atol=1e-12)
    q, r = rng.normal(size=(8, 3)), rng.normal(size=(11, 3))
    yq, yr = rng.integers(0, 2, 8), rng.integers(0, 2, 11)
    cos = _l2(q) @ _l2(r).T
    assert map_at_k_from_scores(cos, yq, yr, 4) == map_at_k(q, r, yq, yr, 4)


# --------------------------------------------------------------------------- the thesis example


def test_thesis_worked_example():
    """Thesis §4.2.B / Figure 21: relevant items at ranks 1, 4 and 5 -> AP = (1.0 + 0.5 + 0.6) / 3."""
    angles = np.deg2rad([0, 10, 20, 30, 40, 50])      # rank = order of angle from the query
    # list the retrieval items out of rank order so the test does not rely on index order
    perm = np.array([3, 0, 5, 1, 4, 2])
    retrieval = np.stack([np.cos(angles), np.sin(angles)], axis=1)[perm]
    labels_by_rank = np.array([1, 0, 0, 1, 1, 0])       # relevant (class 1) at ranks 1, 4, 5
    query = np.array([[1.0, 0.0]])
    expected = (1.0 + 2 / 4 + 3 / 5) / 3
    assert expected == pytest.approx(0.7)
    for k in (5, 6, 50, None):
        assert map_at_k(query, retrieval, [1], labels_by_rank[perm], k) == pytest.approx(expected, abs=1e-15)
    # a smaller cut-off normalises by the hits inside it: K=4 -> (1 + 2/4) / 2; K=3 -> 1/1
    assert map_at_k(query, retrieval, [1], labels_by_rank[perm], 4) == pytest.approx(0.75, abs=1e-15)
    assert map_at_k(query, retrieval, [1], labels_by_rank[perm], 3) == pytest.approx(1.0, abs=1e-15)


# --------------------------------------------------------------------------- chance level


@pytest.mark.parametrize("n,r,k", [(6, 2, 3), (6, 3, 6), (5, 1, 1), (7, 4, 2), (6, 6, 4), (6, 0, 3)])
def test_chance_is_exact_by_enumeration(n, r, k):
    yr = np.array([1] * r + [0] * (n - r))
    aps = [naive_ap_from_scores(-np.array([p], float), np.array([1]), yr, k)[0]
           for p in itertools.permutations(range(n))]
    assert chance_map_at_k(np.array([1]), yr, k) == pytest.approx(np.mean(aps), abs=1e-12)


def test_chance_against_monte_carlo():
    rng = np.random.default_rng(7)
    yr = rng.integers(0, 6, size=90)
    yq = np.repeat(np.arange(6), 1)
    trials = 4000
    for k in (10, None):
        exact = chance_map_at_k(yq, yr, k)
        yq_rep = np.tile(yq, trials)
        _, per = map_at_k_from_scores(rng.random((yq_rep.size, 90)), yq_rep, yr, k, return_per_query=True)
        se = per.std() / np.sqrt(per.size)
        assert abs(per.mean() - exact) < 4 * se, (k, per.mean(), exact, se)


def test_chance_multilabel_and_counts():
    yq = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0]])
    yr = np.array([[1, 0, 0], [0, 0, 1], [1, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(relevance_counts(yq, yr), [2, 2, 0])
    np.testing.assert_array_equal(relevance_counts([0, 1, 5], [1, 1, 0, 2]), [1, 2, 0])
    # K = N: expected AP@all = (1/N)(H_N + (R-1)(N-H_N)/(N-1)); N=4, R=2 -> (H4 + (4-H4)/3)/4
    h4 = 1 + 1 / 2 + 1 / 3 + 1 / 4
    want = ((h4 + (4 - h4) / 3) / 4 * 2 + 0.0) / 3
    assert chance_map_at_k(yq, yr, None) == pytest.approx(want, abs=1e-12)


# --------------------------------------------------------------------------- input validation


@pytest.mark.parametrize(
    "args,match",
    [
        ((np.ones((3, 4)), np.ones((5, 3)), [0, 1, 2], [0] * 5), "dimension"),
        ((np.ones((0, 4)), np.ones((5, 4)), [], [0] * 5), "empty"),
        ((np.ones((3, 4)), np.ones((0, 4)), [0, 1, 2], []), "empty"),
        ((np.ones((3, 4)), np.ones((5, 4)), [0, 1], [0] * 5), "labels"),
        ((np.ones((3, 4)), np.ones((5, 4)), [0, 1, 2], np.zeros((5, 2), int)), "must both be single-label"),
        ((np.ones((3, 4)), np.ones((5, 4)), np.full((3, 1), 7), np.full((5, 1), 3)), "multi-hot"),
        ((np.ones((3, 4)), np.ones((5, 4)), np.zeros((3, 2)), np.zeros((5, 3))), "classes"),
        ((np.ones(4), np.ones((5, 4)), [0], [0] * 5), "2-D"),
        ((np.full((3, 4), np.nan), np.ones((5, 4)), [0, 1, 2], [0] * 5), "NaN"),
        ((np.ones((3, 4)), np.ones((5, 4)), ["a", "b", "c"], [0] * 5), "integer"),
    ],
)
def test_bad_inputs_raise_clear_errors(args, match):
    with pytest.raises(ValueError, match=match):
        map_at_k(*args)


@pytest.mark.parametrize("k", [0, -1, 2.5, "ten", True])
def test_bad_k(k):
    with pytest.raises(ValueError, match="k must"):
        map_at_k(np.ones((2, 2)), np.ones((3, 2)), [0, 1], [0, 1, 1], k)


def test_bad_scores():
    with pytest.raises(ValueError, match="2-D"):
        map_at_k_from_scores(np.ones(3), [0], [0, 1, 2])
    with pytest.raises(ValueError, match="NaN"):
        map_at_k_from_scores(np.array([[0.0, np.inf]]), [0], [0, 1])
    with pytest.raises(ValueError, match="labels"):
        map_at_k_from_scores(np.ones((2, 3)), [0], [0, 1, 2])


# --------------------------------------------------------------------------- helpers


def _l2(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _has_mixed_tie(sims, yq, yr):
    for i in range(sims.shape[0]):
        vals, inv = np.unique(sims[i], return_inverse=True)
        for v in range(len(vals)):
            members = np.flatnonzero(inv == v)
            rel = yr[members] == yq[i]
            if rel.any() and not rel.all():
                return True
    return False


def test_tie_free_data_never_takes_the_stable_fallback(monkeypatch):
    """The stable full sort is only for rows with ties; continuous scores must use the fast path."""
    from cvs_tf.evaluation import metrics

    def boom(s):
        raise AssertionError("stable fallback used on tie-free data")

    rng = np.random.default_rng(8)
    q, r = rng.normal(size=(30, 8)), rng.normal(size=(200, 8))
    yq, yr = rng.integers(0, 4, 30), rng.integers(0, 4, 200)
    want = {k: map_at_k(q, r, yq, yr, k) for k in (10, None)}
    monkeypatch.setattr(metrics, "_stable_order", boom)
    for k in (10, None):
        assert map_at_k(q, r, yq, yr, k) == want[k]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 8, 9, 16, 33])
def test_vectorised_binary_search_matches_searchsorted(n):
    from cvs_tf.evaluation.metrics import _count_at_most

    rng = np.random.default_rng(n)
    srt = np.sort(rng.integers(0, 5, size=(6, n)).astype(float), axis=1)       # duplicates included
    rows = np.repeat(np.arange(6), 8)
    v = rng.integers(-1, 6, size=rows.size).astype(float)                     # below, inside, above
    want = [np.searchsorted(srt[r], x, side="right") for r, x in zip(rows, v)]
    np.testing.assert_array_equal(_count_at_most(srt.ravel(), rows * n, n, v), want)


# --------------------------------------------------------------------------- recall@K (instance level)


def naive_partner_ranks(scores):
    """Plain Python: sort each row by (-score, index) and find the partner's 1-based position."""
    n = scores.shape[1]
    return np.array([sorted(range(n), key=lambda j: (-scores[i, j], j)).index(i) + 1
                     for i in range(scores.shape[0])])


def test_recall_hand_computed_with_ties():
    s = np.array([[0.5, 0.9, 0.5, 0.1],    # one score above the partner; tie after it: rank 2
                  [0.7, 0.7, 0.1, 0.7],    # tie with a lower index before, a higher one after: rank 2
                  [0.2, 0.2, 0.2, 0.2],    # all tied: the two lower indices go first: rank 3
                  [0.0, 0.3, 0.3, 0.3]])   # tied with lower indices 1 and 2: rank 3
    assert partner_ranks(s).tolist() == [2, 2, 3, 3]
    rec = recall_at_k_from_scores(s, ks=(1, 2, 3, 10))
    assert rec == {"1": 0.0, "2": 0.5, "3": 1.0, "10": 1.0, "median_rank": 2.5}


def test_recall_hand_computed_cosine_ties():
    q = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    r = np.array([[1.0, 0.0], [5.0, 0.0], [0.0, 1.0]])
    # cosines: q0 -> (1, 1, 0): rank 1; q1 -> (0, 0, 1): partner r1 at 0, r2 above, r0 tied before: rank 3;
    # q2 -> (c, c, c) with c = 1/sqrt(2): partner r2 after two ties: rank 3
    rec, ranks = recall_at_k(q, r, return_ranks=True)
    assert ranks.tolist() == [1, 3, 3]
    assert rec == {"1": pytest.approx(1 / 3), "5": 1.0, "10": 1.0, "median_rank": 3.0}


def test_recall_single_item():
    assert recall_at_k(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])) == {
        "1": 1.0, "5": 1.0, "10": 1.0, "median_rank": 1.0}
    assert recall_at_k_from_scores(np.array([[-3.0]]), ks=(1,)) == {"1": 1.0, "median_rank": 1.0}


@pytest.mark.parametrize("tied", [False, True])
def test_recall_matches_naive_random(tied):
    rng = np.random.default_rng(5)
    n = 37
    q = tied_embeddings(rng, n) if tied else rng.normal(size=(n, 6))
    r = tied_embeddings(rng, n) if tied else q + rng.normal(scale=1.5, size=(n, 6))
    sims = q @ r.T / np.outer(np.linalg.norm(q, axis=1), np.linalg.norm(r, axis=1))
    want = naive_partner_ranks(sims)
    rec, ranks = recall_at_k(q, r, ks=(1, 5, 10), return_ranks=True, chunk_size=4)
    assert ranks.tolist() == want.tolist()
    assert 1 < np.median(want) < n                        # a non-trivial set
    for k in (1, 5, 10):
        assert rec[str(k)] == pytest.approx(np.mean(want <= k))
    assert rec["median_rank"] == np.median(want)
    assert recall_at_k_from_scores(sims) == recall_at_k(q, r)


@pytest.mark.parametrize("args, match", [
    ((np.ones((3, 2)), np.ones((4, 2))), "as many queries"),
    ((np.ones((3, 2)), np.ones((3, 5))), "dimension"),
    ((np.ones((0, 2)), np.ones((0, 2))), "empty"),
])
def test_recall_bad_inputs(args, match):
    with pytest.raises(ValueError, match=match):
        recall_at_k(*args)
    with pytest.raises(ValueError, match="positive integers"):
        recall_at_k(np.ones((2, 2)), np.ones((2, 2)), ks=(0,))
    with pytest.raises(ValueError, match="square"):
        recall_at_k_from_scores(np.ones((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        recall_at_k_from_scores(np.array([[1.0, np.nan], [0.0, 1.0]]))
