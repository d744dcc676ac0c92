"""Per-feature statistics of a split (mean and standard deviation), computed in row chunks without a full copy."""

from __future__ import annotations

import numpy as np

from cvs_tf.data.pipeline import row_batches

__all__ = ["feature_moments"]


def feature_moments(x, chunk_rows: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, std)`` (float32, population σ) of the rows of ``x`` (n, d), accumulated in float64 chunks.

    A memory-mapped (float16) array is read block by block and its pages are released after each
    block (:func:`cvs_tf.data.pipeline.row_batches`). An empty ``x`` raises ``ValueError``.
    """
    n = len(x)
    if n == 0:
        raise ValueError("feature_moments needs at least one row")
    total = sq = None
    for rows in row_batches(x, chunk_rows):
        r = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
        total = r.sum(0) if total is None else total + r.sum(0)
        sq = (r * r).sum(0) if sq is None else sq + (r * r).sum(0)
    mean = total / n
    var = np.maximum(sq / n - mean * mean, 0.0)
    return mean.astype(np.float32), np.sqrt(var).astype(np.float32)
