"""Calibrated similarity scores: what a cosine score means, measured on the validation split.

For every ordered modality pair (query ``q``, gallery ``r``) of the validation split, with each item
embedded alone (independent protocol):

* the distributions (histograms over [-1, 1]) of the cosine scores of same-class pairs, other-class
  pairs and, for instance-paired sets, exact partners;
* a precision curve: for a threshold ``t``, the precision of "every (query, item) pair scoring at
  least ``t`` is a match (same class)", made monotone the cautious way (the lowest precision of any
  higher threshold, each read off at least :data:`MIN_PAIRS` pairs), so a result above ``t`` stands
  for at least that precision;
* the thresholds that reach given precisions (:data:`PRECISIONS`).

The validation queries are split in two seeded halves: the curve and thresholds are fit on the first
half ("fit") and checked on the second ("check": the precision the thresholds reach there, recorded
beside them). Labels are used only to score pairs here, never to embed or to search.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

CALIBRATION_FILE = "calibration.json"
CALIBRATION_FORMAT = "cvs_tf.calibration"
PRECISIONS = (0.5, 0.8, 0.9, 0.95)
#: a threshold "reaches" precision P on the held-apart half when its precision there is >= P - TOLERANCE
TOLERANCE = 0.05
#: a precision is never read off fewer pairs than this (higher thresholds take the first one that has them)
MIN_PAIRS = 20
HIST_BINS = 40
CURVE_POINTS = 200


class CalibrationError(ValueError):
    """A calibration record is missing, damaged, or has no entry for a modality pair."""


def relevance(yq: np.ndarray, yr: np.ndarray) -> np.ndarray:
    """(Nq, Nr) bool: same class (single-label), or at least one shared class (multi-hot labels)."""
    yq, yr = np.asarray(yq), np.asarray(yr)
    if yq.ndim == 2:
        return (yq.astype(np.float32) @ yr.astype(np.float32).T) > 0
    return yq[:, None] == yr[None, :]


def precision_curve(scores: np.ndarray, rel: np.ndarray, points: int = CURVE_POINTS) -> dict:
    """``{"score": ascending thresholds, "precision": conservative precision of score >= threshold}``."""
    s, r = np.asarray(scores, np.float64).ravel(), np.asarray(rel, bool).ravel()
    if s.size == 0:
        return {"score": [], "precision": []}
    order = np.argsort(-s, kind="stable")
    s, r = s[order], r[order]
    n = np.arange(1, s.size + 1)
    prec = np.cumsum(r) / n
    last = np.r_[s[1:] != s[:-1], True]  # the last row of each run of equal scores: all of them are in
    s, prec, n = s[last], prec[last], n[last]
    few = n < min(MIN_PAIRS, int(n[-1]))  # thresholds above fewer pairs take the first well-supported precision
    if few.any():
        prec[few] = prec[np.argmax(~few)]
    env = np.minimum.accumulate(prec)  # from high to low scores: the worst precision at any higher threshold
    s, env = s[::-1], env[::-1]  # ascending scores, non-decreasing precision
    if s.size > points:
        idx = np.unique(np.linspace(0, s.size - 1, points).round().astype(int))
        s, env = s[idx], env[idx]
    return {"score": [float(v) for v in s], "precision": [float(v) for v in env]}


def threshold_for(curve: Mapping, precision: float) -> float | None:
    """The lowest curve threshold whose precision is at least ``precision``; None when none is."""
    prec = np.asarray(curve["precision"], np.float64)
    ok = np.flatnonzero(prec >= precision)
    return float(np.asarray(curve["score"])[ok[0]]) if ok.size else None


def precision_at(curve: Mapping, score: float) -> float | None:
    """The calibrated precision a score corresponds to (that of the highest threshold at or below it)."""
    s = np.asarray(curve["score"], np.float64)
    if s.size == 0:
        return None
    i = max(int(np.searchsorted(s, score, side="right")) - 1, 0)
    return float(curve["precision"][i])


def _hist(values: np.ndarray) -> list[int]:
    return np.histogram(np.clip(values, -1, 1), bins=HIST_BINS, range=(-1.0, 1.0))[0].astype(int).tolist()


def _check(s: np.ndarray, rel: np.ndarray, thresholds: Mapping) -> dict:
    out = {}
    for p, t in thresholds.items():
        hit = s >= t if t is not None else np.zeros_like(rel)
        n = int(hit.sum())
        out[p] = {"precision": float(rel[hit].mean()) if n else None, "pairs": n}
    return out


def calibrate_pair(eq, yq, er, yr, *, same_modality: bool, paired: bool,
                   precisions: Sequence[float] = PRECISIONS, seed: int = 0) -> dict:
    """The calibration record of one ordered pair from unit embeddings and labels (see the module docstring)."""
    eq, er = np.asarray(eq, np.float32), np.asarray(er, np.float32)
    s = eq @ er.T
    rel = relevance(yq, yr)
    valid = np.ones_like(rel)
    if same_modality:  # an item is not its own match
        np.fill_diagonal(valid, False)
    perm = np.random.default_rng(seed).permutation(len(eq))
    fit, check = np.zeros(len(eq), bool), np.zeros(len(eq), bool)
    fit[perm[: (len(eq) + 1) // 2]] = True
    check[perm[(len(eq) + 1) // 2:]] = True
    fv, cv = valid & fit[:, None], valid & check[:, None]
    curve = precision_curve(s[fv], rel[fv])
    thresholds = {str(p): threshold_for(curve, p) for p in precisions}
    hists = {"same_class": _hist(s[valid & rel]), "other_class": _hist(s[valid & ~rel])}
    if paired and not same_modality and s.shape[0] == s.shape[1]:
        hists["partner"] = _hist(np.diag(s))
    return {"queries": int(len(eq)), "fit_queries": int(fit.sum()), "items": int(len(er)),
            "base_rate": float(rel[valid].mean()) if valid.any() else None,
            "curve": curve, "thresholds": thresholds, "check": _check(s[cv], rel[cv], thresholds),
            "histograms": hists}


def calibrate_embeddings(embeddings: Mapping, labels: Mapping, *, paired: bool, split: str = "val",
                         data_label: str = "", precisions: Sequence[float] = PRECISIONS, seed: int = 0) -> dict:
    """The calibration record of every ordered pair (same-modality pairs included) of ``{modality: (N, D)}``."""
    mods = list(embeddings)
    pairs = {q: {r: calibrate_pair(embeddings[q], labels[q], embeddings[r], labels[r], same_modality=q == r,
                                   paired=paired, precisions=precisions, seed=seed) for r in mods} for q in mods}
    return {"format": CALIBRATION_FORMAT, "format_version": 1, "split": split, "protocol": "independent",
            "data_label": data_label, "precisions": [float(p) for p in precisions], "tolerance": TOLERANCE,
            "score": "cosine similarity of unit embeddings", "hist_range": [-1.0, 1.0], "hist_bins": HIST_BINS,
            "halves": "queries split in two seeded halves: thresholds fit on one, checked on the other",
            "seed": int(seed), "modalities": mods, "pairs": pairs}


def calibrate_model(model, fs, *, split: str = "val", modalities: Sequence[str] | None = None,
                    seed: int = 0) -> dict | None:
    """The calibration record of a model on ``split`` of ``fs``; None when the split is empty for a modality."""
    mods = [m for m in (modalities or model.modalities) if m in fs.modalities]
    if not mods or any(fs.count(m, split) == 0 for m in mods):
        return None
    emb = {m: np.asarray(model.embed(m, fs.x(m, split)), np.float32) for m in mods}
    if not all(np.isfinite(e).all() for e in emb.values()):
        return None
    return calibrate_embeddings(emb, {m: fs.y(m, split) for m in mods}, paired=fs.paired, split=split,
                                data_label=fs.data_label, seed=seed)


def pair_record(calibration: Mapping | None, q: str, r: str, *, where: str = "calibration") -> dict:
    """The record of the pair ``q → r``; :class:`CalibrationError` in one line when there is none."""
    if not isinstance(calibration, Mapping) or not isinstance(calibration.get("pairs"), Mapping):
        raise CalibrationError(f"{where}: no score calibration (export a run trained with this version of cvs_tf)")
    rec = (calibration["pairs"].get(q) or {}).get(r)
    if not isinstance(rec, Mapping) or not isinstance(rec.get("curve"), Mapping):
        raise CalibrationError(f"{where}: no score calibration for {q} → {r}")
    return dict(rec)


def check_min_precision(value) -> float:
    """``value`` as a float in (0, 1); ValueError in one line otherwise."""
    try:
        p = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"min_precision must be a number in (0, 1), got {value!r}") from None
    if not (0.0 < p < 1.0) or math.isnan(p):
        raise ValueError(f"min_precision must be in (0, 1) (exclusive), got {value!r}")
    return p


def write_calibration(path: str | Path, record: Mapping) -> Path:
    """Write a calibration record atomically (``RUN_DIR/calibration.json``)."""
    from cvs_tf.utils.atomic import write_json_atomic

    write_json_atomic(path, record)
    return Path(path)


def read_calibration(path: str | Path) -> dict | None:
    """A calibration record, or None when the file is missing or not one."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == CALIBRATION_FORMAT else None
