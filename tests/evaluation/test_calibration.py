"""Score calibration (cvs_tf.evaluation.calibration): thresholds fit on half the validation queries hold on the other half."""

import numpy as np
import pytest

from cvs_tf.evaluation import calibration
from cvs_tf.evaluation.calibration import (
    PRECISIONS,
    TOLERANCE,
    calibrate_embeddings,
    calibrate_pair,
    check_min_precision,
    precision_at,
    precision_curve,
    relevance,
    threshold_for,
)


def _synthetic_space(n, seed, noise=1.4, classes=8, dim=32):
    """Synthetic unit embeddings of two modalities around shared class centres (a stand-in, not a trained space)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim))
    out = {}
    for m in ("image", "text"):
        y = rng.integers(0, classes, n)
        x = centres[y] + noise * rng.normal(size=(n, dim))
        out[m] = (x / np.linalg.norm(x, axis=1, keepdims=True), y)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_thresholds_reach_their_precision_on_the_held_apart_half(seed):
    sp = _synthetic_space(600, seed)
    rec = calibrate_pair(*sp["image"], *sp["text"], same_modality=False, paired=False, seed=seed)
    reached = 0
    for p in PRECISIONS:
        t, chk = rec["thresholds"][str(p)], rec["check"][str(p)]
        if t is None:
            continue
        assert chk["pairs"] >= 100, (p, chk)     # enough held-apart pairs for the tolerance to mean something
        assert chk["precision"] >= p - TOLERANCE, (p, t, chk)
        reached += 1
    assert reached == len(PRECISIONS)


def test_the_curve_is_non_decreasing_and_precision_at_follows_it(monkeypatch):
    monkeypatch.setattr(calibration, "MIN_PAIRS", 1)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    rel = np.array([True, False, True, True, False, False])
    c = precision_curve(scores, rel)
    assert c["score"] == sorted(c["score"]) and np.all(np.diff(c["precision"]) >= 0)
    # of the pairs >= 0.6: 3 of 4 match; >= 0.8: 1 of 2 (the envelope keeps the lower precision above 0.6)
    assert precision_at(c, 0.65) == pytest.approx(0.5) and precision_at(c, 0.95) == pytest.approx(1.0)
    assert threshold_for(c, 0.99) == pytest.approx(0.9) and threshold_for(c, 0.5) == pytest.approx(0.4)


def test_a_precision_is_never_read_off_fewer_than_min_pairs():
    # the single top pair is wrong: alone it would make every threshold "precision 0"
    rel = np.r_[False, np.ones(30, bool), np.zeros(30, bool)]
    c = precision_curve(np.linspace(1, 0, rel.size), rel)
    top = calibration.MIN_PAIRS
    assert c["precision"][-1] == pytest.approx((top - 1) / top)
    assert threshold_for(c, 0.9) is not None


def test_ties_are_taken_together(monkeypatch):
    monkeypatch.setattr(calibration, "MIN_PAIRS", 1)
    c = precision_curve(np.array([0.5, 0.5, 0.2]), np.array([True, False, True]))
    # at 0.5 both tied pairs are in (1 of 2, not the first alone); at 0.2 the set's 2/3 is capped by the 0.5 above
    assert c["score"] == [0.2, 0.5] and c["precision"] == pytest.approx([0.5, 0.5])


def test_same_modality_pairs_skip_the_item_itself_and_partners_are_the_diagonal():
    sp = _synthetic_space(40, 0)
    rec = calibrate_embeddings({m: v[0] for m, v in sp.items()}, {m: v[1] for m, v in sp.items()}, paired=True)
    same = rec["pairs"]["image"]["image"]
    assert sum(same["histograms"]["same_class"]) + sum(same["histograms"]["other_class"]) == 40 * 39
    assert "partner" not in same["histograms"] and sum(rec["pairs"]["image"]["text"]["histograms"]["partner"]) == 40


def test_multi_hot_relevance_is_a_shared_class():
    yq = np.array([[1, 0, 1], [0, 1, 0]])
    yr = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 1]])
    assert relevance(yq, yr).tolist() == [[True, True, True], [False, False, True]]


@pytest.mark.parametrize("bad", [0, 1, -0.5, 1.5, "abc", float("nan"), None])
def test_min_precision_outside_the_open_unit_interval_is_refused(bad):
    with pytest.raises(ValueError, match="min_precision"):
        check_min_precision(bad)
