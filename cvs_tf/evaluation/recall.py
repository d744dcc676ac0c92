"""Instance-level retrieval: recall@K and the median rank of each query's own partner (instance-paired sets).

Query row ``i``'s partner is retrieval row ``i``. Ranking is by the same scores and the same tie
rule as :func:`cvs_tf.evaluation.metrics.map_at_k` (equal scores: lower retrieval index first).
"""

from __future__ import annotations

import numpy as np

from cvs_tf.evaluation.inputs import _F, _check_embeddings, _chunk_rows, _l2_normalize

__all__ = ["RECALL_KS", "partner_ranks", "recall_at_k", "recall_at_k_from_scores"]

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
