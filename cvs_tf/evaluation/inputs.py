"""Checks and blocking shared by the retrieval metrics: cut-offs, labels, embeddings, row blocks."""

from __future__ import annotations

import numpy as np

__all__ = ["normalize_k", "DEFAULT_CHUNK_ENTRIES"]

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
