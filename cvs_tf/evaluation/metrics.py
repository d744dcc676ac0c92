"""Retrieval metrics: exact, vectorised mAP@K / mAP@all (thesis eq. 4.2.1) and its chance level.

Definitions (design.md §5, docs/evaluation.md):

* Each query ranks the whole retrieval set by cosine similarity, largest first. Equal scores
  are broken by **lower retrieval index first**, so every result is deterministic.
* ``AP@K = (1/R_K) * sum_{r<=K} P(r) * rel(r)``, where ``P(r)`` is the precision of the top ``r``,
  ``rel(r)`` is 1 when the item at rank ``r`` is relevant and ``R_K`` is the number of relevant
  items in the top ``K``. ``AP@K = 0`` when ``R_K = 0``. ``K`` larger than the retrieval set is
  clipped to it; ``k=None`` (or ``"all"``) ranks everything, which is standard AP.
* Relevant means the same label for single-label data (labels of shape ``(N,)``, integers) and
  sharing at least one label for multi-hot data (shape ``(N, C)``, 0/1).
* mAP is the mean AP over queries (queries with no relevant item count as 0).

There is one implementation of the ranking and AP (``_ap_chunk``); :func:`map_at_k` computes the
cosine scores of a block of queries and hands them to it, :func:`map_at_k_from_scores` hands it
blocks of a score matrix that a protocol (``cvs_tf.evaluation.protocols``) produced.

Instance-level retrieval (:func:`recall_at_k`, ``cvs_tf.evaluation.recall``, re-exported here) is
for instance-paired sets, where query row ``i``'s own partner is retrieval row ``i``; it ranks with
the same cosine scores and the same tie rule. Input checks live in ``cvs_tf.evaluation.inputs``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

from cvs_tf.evaluation.inputs import (  # noqa: F401 (re-exported: the metrics' checks)
    _F,
    DEFAULT_CHUNK_ENTRIES,
    _check_embeddings,
    _check_label_pair,
    _check_labels,
    _chunk_rows,
    _l2_normalize,
    normalize_k,
)
from cvs_tf.evaluation.recall import (  # noqa: F401 (re-exported: the instance-level metrics)
    RECALL_KS,
    partner_ranks,
    recall_at_k,
    recall_at_k_from_scores,
)

__all__ = [
    "map_at_k",
    "map_at_k_from_scores",
    "chance_map_at_k",
    "recall_at_k",
    "recall_at_k_from_scores",
    "partner_ranks",
    "RECALL_KS",
    "top_k_indices",
    "relevance_counts",
    "normalize_k",
    "DEFAULT_CHUNK_ENTRIES",
]

# --------------------------------------------------------------------------- ranking


def _stable_order(scores: np.ndarray) -> np.ndarray:
    """Full ranking, largest first, ties by lower index: a stable sort on the negated scores."""
    return np.argsort(-scores, axis=1, kind="stable")


def top_k_indices(scores, k: int) -> np.ndarray:
    """Indices of the ``k`` best items per row, in rank order (largest first, ties by lower index).

    ``scores`` is (Q, N) and finite; ``1 <= k <= N``. The k-th largest value of each row comes
    from ``np.partition`` (O(N) per row); the items at or above it are exactly the top k unless
    that value is tied across the cut, in which case the row is redone with a stable full sort
    (so the kept items are the lowest-index ones). Ordering the k items is O(k log k) per row.
    """
    s = np.asarray(scores, dtype=_F)
    q, n = s.shape
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    if k == n:
        return _stable_order(s)
    kth = np.partition(s, n - k, axis=1)[:, n - k]               # the k-th largest value
    mask = s >= kth[:, None]
    flat = np.flatnonzero(mask)
    counts = np.bincount(flat // n, minlength=q)
    tied = counts > k                                            # the k-th value crosses the cut
    idx = np.empty((q, k), dtype=np.intp)
    if tied.any():
        redo = np.flatnonzero(tied)
        idx[redo] = _stable_order(s[redo])[:, :k]
        keep = np.flatnonzero(~tied)
        mask[redo] = False
        cols = (np.flatnonzero(mask) % n).reshape(-1, k)        # ascending index within each row
        vals = s[keep[:, None], cols]
        idx[keep] = np.take_along_axis(cols, np.argsort(-vals, axis=1, kind="stable"), axis=1)
        return idx
    cols = (flat % n).reshape(q, k)                              # ascending index within each row
    vals = np.take_along_axis(s, cols, axis=1)
    return np.take_along_axis(cols, np.argsort(-vals, axis=1, kind="stable"), axis=1)


def _relevance(yq: np.ndarray, yr: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
    """Boolean (Q, K): is retrieval item ``idx[i, j]`` relevant to query ``i`` (idx None: all, in order)."""
    if yq.ndim == 1:
        return (yr[None, :] if idx is None else yr[idx]) == yq[:, None]
    shared = (yq @ yr.T) > 0                       # (Q, N_r): share at least one label
    return shared if idx is None else np.take_along_axis(shared, idx, axis=1)


def _hits(rel: np.ndarray):
    """Relevant positions of a (Q, K) boolean matrix: rows, columns (row-major), R_K per row and
    each hit's 0-based index among its row's hits."""
    q, n = rel.shape
    rows, cols = np.divmod(np.flatnonzero(rel), n)
    r_k = np.bincount(rows, minlength=q)
    within = np.arange(rows.size) - (np.cumsum(r_k) - r_k)[rows]
    return rows, cols, r_k, within


def _ap_sum(rows, ordinal, rank, r_k) -> np.ndarray:
    """(1/R_K) Σ ordinal/rank over each row's hits (the m-th hit at rank r adds P(r) = m/r); 0 if R_K=0."""
    total = np.bincount(rows, weights=ordinal / rank, minlength=r_k.size)
    return np.divide(total, r_k, out=np.zeros(r_k.size, dtype=_F), where=r_k > 0)


def _ap_from_relevance(rel: np.ndarray) -> np.ndarray:
    """AP per row of a ranked (best first) boolean relevance matrix (Q, K)."""
    rows, cols, r_k, within = _hits(rel)
    return _ap_sum(rows, within + 1.0, cols + 1.0, r_k)


def _count_at_most(sorted_flat: np.ndarray, base: np.ndarray, n: int, v: np.ndarray) -> np.ndarray:
    """For each i: how many of the n ascending values ``sorted_flat[base[i]:base[i]+n]`` are <= v[i].

    A binary search for all i at once (binary lifting: add the largest powers of two that keep
    ``sorted[count-1] <= v``), ceil(log2(n+1)) vectorised steps over len(v) items.
    """
    count = np.zeros(v.shape, dtype=np.intp)
    step = 1 << (int(n).bit_length() - 1)
    before, last = base - 1, base + (n - 1)
    while step:
        cand = count + step
        ok = sorted_flat[np.minimum(before + cand, last)] <= v
        ok &= cand <= n
        count += ok * step
        step >>= 1
    return count


def _full_ranking_ap(s: np.ndarray, yq: np.ndarray, yr: np.ndarray) -> np.ndarray:
    """AP@all for a block, from sorted score values: no index sort, no gather of the whole ranking.

    AP@all only needs each relevant item's rank. With the row's values sorted, the rank of a
    relevant item j is 1 + #{i : s_i > s_j} (a binary search); its ordinal among the relevant
    items follows from ordering the relevant items alone. Both are exact when s_j is tied with
    no other item; a row where a relevant item's score occurs twice is re-ranked with the
    stable sort instead (ties: lower index first), which only such rows pay for.
    """
    q, n = s.shape
    rows, cols, r_k, _ = _hits(_relevance(yq, yr))       # relevant items, in index order
    v = s[rows, cols]
    srt = np.sort(s, axis=1)
    base = rows * n
    at_most = _count_at_most(srt.ravel(), base, n, v)    # items with score <= v (itself included)
    rank = n - at_most + 1
    tied = np.zeros(q, dtype=bool)
    second = np.maximum(at_most - 2, 0)                  # another item equal to v sits just below
    tied[rows[(at_most >= 2) & (srt.ravel()[base + second] == v)]] = True
    # ranks in increasing order within each row (rows are already grouped): one integer sort
    rank = (np.sort(rows * (n + 1) + rank) - rows * (n + 1)).astype(_F)
    within = np.arange(rows.size) - (np.cumsum(r_k) - r_k)[rows]
    ap = _ap_sum(rows, within + 1.0, rank, r_k)
    if tied.any():
        redo = np.flatnonzero(tied)
        ap[redo] = _ap_from_relevance(_relevance(yq[redo], yr, _stable_order(s[redo])))
    return ap


def _ap_chunk(s: np.ndarray, yq: np.ndarray, yr: np.ndarray, k: int) -> np.ndarray:
    """AP@k of every row of a (Q, N) float64 score block (the one ranking/AP implementation)."""
    if k >= s.shape[1]:
        return _full_ranking_ap(s, yq, yr)
    return _ap_from_relevance(_relevance(yq, yr, top_k_indices(s, k)))


# --------------------------------------------------------------------------- public metrics


def map_at_k(query_emb, retrieval_emb, query_labels, retrieval_labels, k=50, *,
             return_per_query: bool = False, chunk_size: int | None = None):
    """mAP@K of cosine-similarity retrieval from a query set into a separate retrieval set.

    Args:
      query_emb: (N_q, D) query embeddings (any real dtype; computed in float64).
      retrieval_emb: (N_r, D) retrieval-set embeddings.
      query_labels, retrieval_labels: (N,) integer class ids, or (N, C) multi-hot 0/1 (both the
        same kind). Relevant = same class / at least one shared class.
      k: cut-off K (clipped to N_r); ``None`` or ``"all"`` = standard AP over the whole ranking.
      return_per_query: also return the (N_q,) float64 array of AP values.
      chunk_size: queries per block; default ``max(1, 2**20 // N_r)``.

    Returns:
      mAP as a float, or ``(mAP, per_query_ap)`` with ``return_per_query=True``.

    Memory: besides float64 copies of both sets (O((N_q + N_r)·D)), one block holds
    O(chunk·N_r) values, at most ~40 bytes per entry (scores, their sorted or partitioned copy,
    masks; index arrays for rows with ties),
    so ~40 MiB with the default chunk whatever N_q is; multi-hot labels add O(C·(N_q + N_r)).
    Time: one float64 matmul, then per query row a ``partition`` (K < N_r) or a sort of the
    values (K = all), plus O(#relevant · log N_r) for the ranks; all vectorised over the block.

    Raises:
      ValueError: mismatched dimensions or label counts, empty sets, bad label shapes, NaN/Inf,
        or an invalid ``k``.
    """
    q = _check_embeddings(query_emb, "query_emb")
    r = _check_embeddings(retrieval_emb, "retrieval_emb")
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"query_emb has dimension {q.shape[1]} but retrieval_emb has {r.shape[1]}")
    yq, yr = _check_label_pair(query_labels, retrieval_labels, q.shape[0], r.shape[0])
    kk = normalize_k(k, r.shape[0])
    # Only the retrieval side is normalised: dividing a query row by its norm (> 0) cannot change
    # that row's ranking, and AP depends on the ranking only. A zero query scores 0 everywhere.
    qn, rnT = np.asarray(q, dtype=_F), _l2_normalize(r).T
    step = _chunk_rows(chunk_size, r.shape[0])
    ap = np.empty(q.shape[0], dtype=_F)
    for a in range(0, q.shape[0], step):
        b = min(a + step, q.shape[0])
        ap[a:b] = _ap_chunk(qn[a:b] @ rnT, yq[a:b], yr, kk)
    return (float(ap.mean()), ap) if return_per_query else float(ap.mean())


def map_at_k_from_scores(scores, query_labels, retrieval_labels, k=50, *,
                         return_per_query: bool = False, chunk_size: int | None = None):
    """mAP@K from a precomputed (N_q, N_r) similarity matrix (larger = more similar).

    Same ranking, tie rule, AP definition, label rules and errors as :func:`map_at_k`, which is
    this function applied to cosine similarities. Scores are ranked in float64; memory beyond
    the given matrix is O(chunk·N_r) per block.
    """
    s = np.asarray(scores)
    if s.ndim != 2:
        raise ValueError(f"scores must be a 2-D (N_q, N_r) matrix, got shape {s.shape}")
    if s.shape[0] == 0 or s.shape[1] == 0:
        raise ValueError(f"scores {s.shape} has an empty query or retrieval set")
    if not np.issubdtype(s.dtype, np.number) or np.iscomplexobj(s):
        raise ValueError(f"scores must be real numbers, got dtype {s.dtype}")
    yq, yr = _check_label_pair(query_labels, retrieval_labels, s.shape[0], s.shape[1])
    kk = normalize_k(k, s.shape[1])
    step = _chunk_rows(chunk_size, s.shape[1])
    ap = np.empty(s.shape[0], dtype=_F)
    for a in range(0, s.shape[0], step):
        b = min(a + step, s.shape[0])
        block = np.asarray(s[a:b], dtype=_F)
        if not np.isfinite(block).all():
            raise ValueError("scores contain NaN or Inf")
        ap[a:b] = _ap_chunk(block, yq[a:b], yr, kk)
    return (float(ap.mean()), ap) if return_per_query else float(ap.mean())


def relevance_counts(query_labels, retrieval_labels) -> np.ndarray:
    """Number of relevant retrieval items for every query, (N_q,) int64."""
    yq = np.asarray(query_labels)
    yr = np.asarray(retrieval_labels)
    nq = yq.shape[0] if yq.ndim else 0
    nr = yr.shape[0] if yr.ndim else 0
    if nq == 0 or nr == 0:
        raise ValueError("relevance needs non-empty query and retrieval label sets")
    yq, yr = _check_label_pair(yq, yr, nq, nr)
    if yq.ndim == 1:
        classes, counts = np.unique(yr, return_counts=True)
        pos = np.searchsorted(classes, yq)
        pos_c = np.minimum(pos, classes.size - 1)
        return np.where(classes[pos_c] == yq, counts[pos_c], 0).astype(np.int64)
    return np.count_nonzero((yq @ yr.T) > 0, axis=1).astype(np.int64)


def _harmonic(n: np.ndarray) -> np.ndarray:
    """H_n = Σ_{i<=n} 1/i for an integer array (exact cumulative sum up to max n)."""
    n = np.asarray(n, dtype=np.int64)
    table = np.concatenate(([0.0], np.cumsum(1.0 / np.arange(1, int(n.max()) + 1))))
    return table[n]


def chance_map_at_k(query_labels, retrieval_labels, k=50, *, return_per_query: bool = False):
    """Expected mAP@K of a uniformly random ranking (exact, no sampling).

    For a query with R relevant items among N (K clipped to N), the number of relevant items
    in the top K, m, is hypergeometric; given m their ranks are a uniform m-subset of 1..K, so

        E[AP@K | m] = (1/K)·(H_K + (m-1)(K-H_K)/(K-1))    (m >= 1; H_K the K-th harmonic number)

    which is linear in m. Hence, with P0 = P(m = 0) = C(N-R, K)/C(N, K) and E[m] = K·R/N,

        E[AP@K] = (1/K)·[(1-P0)·(H_K - (K-H_K)/(K-1)) + (K·R/N)·(K-H_K)/(K-1)],

    and E[AP@1] = R/N. For K = N (mAP@all) this is (1/N)·(H_N + (R-1)(N-H_N)/(N-1)).
    The result is the mean over queries (same label rules as :func:`map_at_k`).
    """
    r = relevance_counts(query_labels, retrieval_labels).astype(np.float64)
    n = int(np.asarray(retrieval_labels).shape[0])
    kk = normalize_k(k, n)
    if kk == 1:
        ap = r / n
    else:
        h = float(_harmonic(np.array([kk]))[0])
        # log C(N-R, K) - log C(N, K); zero probability when N - R < K
        nr = n - r
        with np.errstate(invalid="ignore"):
            log_p0 = (gammaln(nr + 1) - gammaln(nr - kk + 1) - gammaln(n + 1) + gammaln(n - kk + 1))
        p0 = np.where(nr >= kk, np.exp(np.where(nr >= kk, log_p0, 0.0)), 0.0)
        c = (kk - h) / (kk - 1)
        ap = ((1.0 - p0) * (h - c) + (kk * r / n) * c) / kk
        ap = np.where(r > 0, ap, 0.0)
    return (float(ap.mean()), ap) if return_per_query else float(ap.mean())
