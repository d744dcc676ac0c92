"""Regularised linear CCA between two modalities: the core of the ``cca`` baseline (cvs_tf.evaluation.baselines).

With centred features, ``C_aa + lambda * (tr(C_aa)/d_a) * I`` (the ridge is relative to the mean
variance, so it is scale-free), whitening ``W_a = C_aa^{-1/2}``, SVD of ``W_a C_ab W_b = U S V^T``;
the projections are ``W_a U_k`` and ``W_b V_k``, and each projected item is weighted by the
canonical correlations ``S_k`` before cosine retrieval. ``lambda`` and ``k`` are chosen per pair
on val (:func:`best_cca`): by val mAP@K for the class level, by the rsum (R@1 + R@5 + R@10 of
both directions) for the instance level (:func:`cca_recall`). Instance-paired sets are fit on the
true pairs; class-paired sets on class-aligned pseudo-pairs (:func:`class_aligned_pairs`).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations

import numpy as np

from cvs_tf.data.store import FeatureSet
from cvs_tf.evaluation.metrics import RECALL_KS, map_at_k, recall_at_k

__all__ = ["CCA_LAMBDAS", "CCA_DIMS", "View", "PairCCA", "class_aligned_pairs", "best_cca", "cca_recall", "rsum"]

CCA_LAMBDAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
CCA_DIMS = (4, 8, 16, 32, 64, 128)


class View:
    """One modality's training statistics: mean and the non-null eigenpairs of its covariance.

    Only the subspace the training items span matters: paired rows lie in it, so the
    cross-covariance vanishes outside it and CCA there is exact and costs O(rank^3), not O(d^3).
    """

    def __init__(self, x: np.ndarray):
        x = np.asarray(x, np.float64)
        self.mu = x.mean(0)
        c = np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])
        w, v = np.linalg.eigh(c)
        keep = w > max(float(w.max(initial=0.0)), 1e-300) * 1e-10
        self.w, self.v = w[keep], v[:, keep]
        self.scale = float(np.trace(c)) / len(c) + 1e-12

    def whiten(self, lam: float) -> np.ndarray:
        """(d, r): ``V_r (W_r + lam * mean_variance)^{-1/2}``, the ridge-whitening on the data subspace."""
        return self.v / np.sqrt(self.w + lam * self.scale)


class PairCCA:
    """Regularised CCA between two views for one ridge ``lam``; ``project`` keeps the top ``k``.

    With whitenings ``W_a``, ``W_b`` (:meth:`View.whiten`) the canonical pairs are the singular
    vectors of ``W_a^T C_ab W_b = U S V^T``; the projections are ``W_a U`` and ``W_b V``.
    """

    def __init__(self, va: View, vb: View, pa: np.ndarray, pb: np.ndarray, lam: float):
        """``va``/``vb``: each view's own training statistics; ``pa``/``pb``: the paired rows."""
        self.mu_a, self.mu_b = va.mu, vb.mu
        wa, wb = va.whiten(lam), vb.whiten(lam)
        ga = (np.asarray(pa, np.float64) - va.mu) @ wa
        gb = (np.asarray(pb, np.float64) - vb.mu) @ wb
        u, s, vt = np.linalg.svd(ga.T @ gb / max(1, len(ga) - 1), full_matrices=False)
        self.proj_a, self.proj_b, self.corr = wa @ u, wb @ vt.T, s

    def project(self, x: np.ndarray, side: str, k: int) -> np.ndarray:
        k = min(k, len(self.corr))
        mu, p = (self.mu_a, self.proj_a) if side == "a" else (self.mu_b, self.proj_b)
        return ((np.asarray(x, np.float64) - mu) @ p[:, :k]) * self.corr[:k]


def class_aligned_pairs(ya: np.ndarray, yb: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (ia, ib) pairing items of the same class: each item of the larger side once,
    the smaller side cycled in a seeded random order. Classes missing on either side are skipped."""
    rng = np.random.default_rng(seed)
    ia, ib = [], []
    for c in np.intersect1d(ya, yb):
        a, b = np.flatnonzero(ya == c), np.flatnonzero(yb == c)
        n = max(len(a), len(b))
        a = np.resize(rng.permutation(a), n) if len(a) < n else a
        b = np.resize(rng.permutation(b), n) if len(b) < n else b
        ia.append(a)
        ib.append(b)
    return np.concatenate(ia), np.concatenate(ib)


def pairs(fs: FeatureSet, a: str, b: str, seed: int):
    """Paired training rows of modalities a and b: the true pairs, or class-aligned pseudo-pairs."""
    xa, xb = np.asarray(fs.x(a, "train"), np.float64), np.asarray(fs.x(b, "train"), np.float64)
    if fs.paired:
        return xa, xb
    ia, ib = class_aligned_pairs(np.asarray(fs.y(a, "train")), np.asarray(fs.y(b, "train")), seed)
    return xa[ia], xb[ib]


def both_directions(cca: PairCCA, fs: FeatureSet, a: str, b: str, split: str, dims: int, k) -> tuple[float, float]:
    za, zb = cca.project(fs.x(a, split), "a", dims), cca.project(fs.x(b, split), "b", dims)
    ya, yb = fs.y(a, split), fs.y(b, split)
    return map_at_k(za, zb, ya, yb, k), map_at_k(zb, za, yb, ya, k)


def best_cca(fs: FeatureSet, views: dict, a: str, b: str, seed: int, k, criterion=None):
    """(val score, lambda, dims, fitted CCA) of the best grid point for the pair a-b on val; the
    score is ``criterion(cca, dims)``, by default the val mAP@k averaged over both directions."""
    if criterion is None:
        criterion = lambda cca, dims: float(np.mean(both_directions(cca, fs, a, b, "val", dims, k)))  # noqa: E731
    pa, pb = pairs(fs, a, b, seed)
    best = None
    for lam in CCA_LAMBDAS:
        cca = PairCCA(views[a], views[b], pa, pb, lam)
        for dims in CCA_DIMS:
            if dims > len(cca.corr) and dims != CCA_DIMS[0]:
                continue
            val = criterion(cca, dims)
            if best is None or val > best[0] + 1e-12:
                best = (val, lam, dims, cca)
    return best


def pair_recall(cca: PairCCA, fs: FeatureSet, a: str, b: str, split: str, dims: int) -> tuple[dict, dict]:
    za, zb = cca.project(fs.x(a, split), "a", dims), cca.project(fs.x(b, split), "b", dims)
    return recall_at_k(za, zb), recall_at_k(zb, za)


def rsum(*records: dict) -> float:
    """Sum of R@1, R@5 and R@10 over recall records (both directions: the usual "rsum" criterion)."""
    return float(sum(rec[str(k)] for rec in records for k in RECALL_KS))


def _require_paired(fs: FeatureSet) -> None:
    if not fs.paired:
        raise ValueError(f"{fs.name} is class-paired: instance-level recall needs instance-paired items")


def cca_recall(fs: FeatureSet, modalities: list[str], seed: int = 0,
               log: Callable[[str], None] = lambda _m: None) -> tuple[dict, dict]:
    """Instance-level CCA on test, ``({query: {retrieval: recall record}}, chosen per pair)``.

    Per pair, ``lambda`` and the number of components are chosen on val by the rsum (R@1 + R@5 +
    R@10 of both directions), the usual selection criterion for instance retrieval."""
    _require_paired(fs)
    views = {m: View(fs.x(m, "train")) for m in modalities}
    record, chosen = {m: {} for m in modalities}, {}
    for a, b in combinations(modalities, 2):
        score = lambda cca, dims, a=a, b=b: rsum(*pair_recall(cca, fs, a, b, "val", dims))  # noqa: E731
        val, lam, dims, cca = best_cca(fs, views, a, b, seed, None, criterion=score)
        record[a][b], record[b][a] = pair_recall(cca, fs, a, b, "test", dims)
        chosen[f"{a}-{b} (R@K)"] = {"lambda": lam, "k": min(dims, len(cca.corr)), "val_rsum": round(val, 4)}
        log(f"  cca {a}-{b} (instance level): lambda={lam:g} k={min(dims, len(cca.corr))} (val rsum {val:.3f})")
    return {q: {r: record[q][r] for r in modalities if r != q} for q in modalities}, chosen
