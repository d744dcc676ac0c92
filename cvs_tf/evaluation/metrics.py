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

Instance-level retrieval (:func:`recall_at_k`) is for instance-paired sets, where query row ``i``'s
own partner is retrieval row ``i``; it ranks with the same cosine scores and the same tie rule.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

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

#: Default number of (query, retrieval) entries held per block: chunk = max(1, this // N_r).
#: At most about 40 bytes per entry (float64 scores, their sorted copy, masks, index arrays),
#: a block stays under ~40 MiB whatever the gallery size.
DEFAULT_CHUNK_ENTRIES = 1 << 20

# Scores are ranked in float64: the tie rule relies on exact comparisons of the values ranked.
_F = np.float64


# --------------------------------------------------------------------------- validation


def normalize_k(k, n_retrieval: int | None = None) -> int | None:
    """Validate ``k`` (a positive int, ``None`` or ``"all"``); return it clipped to ``n_retrieval``.

    Returns ``None`` for "all" when ``n_retrieval`` is not given.
    """
    if k is None or (isinstance(k, str) and k.strip().lower() == "all"):
        return n_retrieval
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise ValueError(f"k must be a positive integer, None or 'all', got {k!r}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return int(k) if n_retrieval is None else min(int(k), int(n_retrieval))


def _check_labels(labels, n: int, what: str) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim == 1:
        if y.shape[0] != n:
            raise ValueError(f"{what} has {y.shape[0]} labels for {n} items")
        if y.dtype == bool or not np.issubdtype(y.dtype, np.integer):
            if np.issubdtype(y.dtype, np.floating) and y.size and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
                return y.astype(np.int64)
            raise ValueError(f"{what}: single-label data needs integer labels of shape (N,), got dtype {y.dtype}")
        return y
    if y.ndim == 2:
        if y.shape[0] != n:
            raise ValueError(f"{what} has {y.shape[0]} label rows for {n} items")
        if y.size and not np.isin(y, (0, 1)).all():
            raise ValueError(
                f"{what}: 2-D labels must be multi-hot 0/1 of shape (N, C) "
                "(class ids belong in a 1-D array of shape (N,))"
            )
        return y.astype(np.float32)
    raise ValueError(f"{what} must have shape (N,) (class ids) or (N, C) (multi-hot), got {y.shape}")


def _check_label_pair(query_labels, retrieval_labels, nq: int, nr: int):
    yq = _check_labels(query_labels, nq, "query_labels")
    yr = _check_labels(retrieval_labels, nr, "retrieval_labels")
    if yq.ndim != yr.ndim:
        raise ValueError(
            f"query_labels {yq.shape} and retrieval_labels {yr.shape} must both be single-label (N,) "
            "or both multi-hot (N, C)"
        )
    if yq.ndim == 2 and yq.shape[1] != yr.shape[1]:
        raise ValueError(f"multi-hot labels have {yq.shape[1]} (query) vs {yr.shape[1]} (retrieval) classes")
    return yq, yr


def _check_embeddings(x, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{what} must be 2-D (N, D), got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{what} is empty (no items): cannot rank or score retrieval")
    if x.shape[1] == 0:
        raise ValueError(f"{what} has dimension 0")
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise ValueError(f"{what} must be real numbers, got dtype {x.dtype}")
    if not np.isfinite(x).all():
        raise ValueError(f"{what} contains NaN or Inf")
    return x


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as a new float64 array; an all-zero row stays zero (cosine 0)."""
    x = np.array(x, dtype=_F)
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    x /= np.where(norms > 0, norms, 1.0)[:, None]
    return x


def _chunk_rows(chunk_size, n_retrieval: int) -> int:
    if chunk_size is None:
        return max(1, DEFAULT_CHUNK_ENTRIES // max(1, n_retrieval))
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    return int(chunk_size)


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


# --------------------------------------------------------------------------- instance level

#: The default recall cut-offs (R@1, R@5, R@10).
RECALL_KS = (1, 5, 10)


def _partner_rank_chunk(s: np.ndarray, first: int) -> np.ndarray:
    """1-based rank of each row's partner (column ``first + row``) in a float64 score block, under
    the stable rule: 1 + #{j : s_j > s_p} + #{j < p : s_j = s_p}."""
    rows = np.arange(s.shape[0])
    p = first + rows
    v = s[rows, p][:, None]
    before = np.arange(s.shape[1])[None, :] < p[:, None]
    return 1 + np.count_nonzero((s > v) | ((s == v) & before), axis=1)


def _check_ks(ks) -> tuple[int, ...]:
    ks = tuple(ks)
    if not ks:
        raise ValueError("ks must list at least one cut-off")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"recall cut-offs must be positive integers, got {k!r}")
    return tuple(int(k) for k in ks)


def _recall_record(ranks: np.ndarray, ks: tuple[int, ...]) -> dict:
    out = {str(k): float(np.mean(ranks <= k)) for k in ks}
    out["median_rank"] = float(np.median(ranks))
    return out


def partner_ranks(scores, *, chunk_size: int | None = None) -> np.ndarray:
    """(N,) int64: the 1-based rank of each query's partner (retrieval row ``i`` for query row ``i``)
    in a square (N, N) score matrix (larger = more similar), ties broken by lower index first."""
    s = np.asarray(scores)
    if s.ndim != 2 or s.shape[0] != s.shape[1] or s.shape[0] == 0:
        raise ValueError(f"scores must be a non-empty square (N, N) matrix of paired items, got shape {s.shape}")
    if not np.issubdtype(s.dtype, np.number) or np.iscomplexobj(s):
        raise ValueError(f"scores must be real numbers, got dtype {s.dtype}")
    step = _chunk_rows(chunk_size, s.shape[1])
    ranks = np.empty(s.shape[0], dtype=np.int64)
    for a in range(0, s.shape[0], step):
        b = min(a + step, s.shape[0])
        block = np.asarray(s[a:b], dtype=_F)
        if not np.isfinite(block).all():
            raise ValueError("scores contain NaN or Inf")
        ranks[a:b] = _partner_rank_chunk(block, a)
    return ranks


def recall_at_k_from_scores(scores, ks=RECALL_KS, *, return_ranks: bool = False, chunk_size: int | None = None):
    """Recall@K and median rank from a square (N, N) score matrix of instance-paired items.

    Same definitions as :func:`recall_at_k`, which is this function applied to cosine scores.
    """
    ks = _check_ks(ks)
    ranks = partner_ranks(scores, chunk_size=chunk_size)
    rec = _recall_record(ranks, ks)
    return (rec, ranks) if return_ranks else rec


def recall_at_k(query_emb, retrieval_emb, ks=RECALL_KS, *, return_ranks: bool = False,
                chunk_size: int | None = None) -> dict:
    """Instance-level retrieval: recall@K and the median rank of each query's own partner.

    Query row ``i``'s partner is retrieval row ``i`` (an instance-paired split: same N on both
    sides). Each query ranks the whole retrieval set by cosine similarity ``s``, largest first,
    and equal scores are broken by **lower retrieval index first**, the stable ordering of
    :func:`map_at_k`. The partner's 1-based rank is therefore

        rank_i = 1 + #{j : s_ij > s_ii} + #{j < i : s_ij = s_ii},

    ``R@K = (1/N) Σ_i [rank_i <= K]`` (K larger than N gives 1), and ``median_rank`` is the
    median of the rank_i (the mean of the two middle ranks when N is even).

    Returns:
      ``{"1": r1, "5": r5, "10": r10, "median_rank": m}`` (keys ``str(K)`` for each K in ``ks``),
      plus the (N,) int64 ranks with ``return_ranks=True``.

    Memory: one block of O(chunk·N) scores at a time (default chunk ``max(1, 2**20 // N)``).

    Raises:
      ValueError: different item counts or dimensions, empty sets, NaN/Inf, or bad ``ks``.
    """
    ks = _check_ks(ks)
    q = _check_embeddings(query_emb, "query_emb")
    r = _check_embeddings(retrieval_emb, "retrieval_emb")
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"query_emb has dimension {q.shape[1]} but retrieval_emb has {r.shape[1]}")
    if q.shape[0] != r.shape[0]:
        raise ValueError(f"instance-paired retrieval needs as many queries as retrieval items, "
                         f"got {q.shape[0]} and {r.shape[0]}")
    # as in map_at_k: scaling a query row by its norm cannot change its ranking
    qn, rnT = np.asarray(q, dtype=_F), _l2_normalize(r).T
    step = _chunk_rows(chunk_size, r.shape[0])
    ranks = np.empty(q.shape[0], dtype=np.int64)
    for a in range(0, q.shape[0], step):
        b = min(a + step, q.shape[0])
        ranks[a:b] = _partner_rank_chunk(qn[a:b] @ rnT, a)
    rec = _recall_record(ranks, ks)
    return (rec, ranks) if return_ranks else rec


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
