"""``--preset auto``'s search: candidates in order within the budget, flags kept fixed, the choice and its record, no test read."""

import pytest

from cvs_tf.config import RunConfig
from cvs_tf.data.store import FeatureSet, load_feature_set
from cvs_tf.tuning import auto
from tests.tuning.helpers import NoTest, fake_clock, fake_training, two_modality_set

TINY = {"model": {"dim": 8}, "train": {"batch_size": 16, "jit": False, "patience": 5}}
FIXED = {"model.dim": 8, "train.epochs": 1, "train.batch_size": 16}


def _guarded(tmp_path):
    fs = load_feature_set(two_modality_set(tmp_path))
    return fs, NoTest(fs.path, fs.manifest, fs.arrays)


def test_the_budget_bounds_the_candidates_presets_first_then_loss_kinds_then_the_search(tmp_path, monkeypatch):
    """Stand-in training (score a function of lr and depth), 100 s per candidate: 15 min runs 9 of them."""
    fs, guarded = _guarded(tmp_path)
    fake_training(monkeypatch)
    fake_clock(monkeypatch, 100.0)
    lines = []
    rec = auto.auto_search(RunConfig.from_dict(TINY), guarded, fixed=FIXED, budget_minutes=15, log=lines.append)
    labels = [c["label"] for c in rec["candidates"]]
    assert len(labels) == 9 and rec["stopped"].startswith("budget: 15m00s used")
    from cvs_tf.presets import preset_names
    from cvs_tf.tuning.space import resolve_loss_kinds

    n_fixed = len(preset_names()) + len(resolve_loss_kinds(None))
    assert labels[:len(preset_names())] == [f"preset {n}" for n in preset_names()]
    assert all(lb.startswith("preset best, loss ") for lb in labels[len(preset_names()):n_fixed - 1])
    assert all(lb.startswith("search: ") and "dim=" not in lb for lb in labels[n_fixed:])
    assert sum(line.startswith("auto ") for line in lines) == 9 and "[15m00s/15m00s]" in lines[-2]
    scores = [c["score"] for c in rec["candidates"]]
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    assert rec["chosen"]["number"] == best and rec["chosen"]["score"] == scores[best]
    cfg = RunConfig.from_dict(rec["chosen"]["config"])
    assert (cfg.model.dim, cfg.train.epochs, cfg.train.batch_size, cfg.train.jit) == (8, 1, 16, False)
    assert rec["budget_minutes"] == 15 and set(rec["baseline"]) == {"scores", "strongest", "score"}
    learned = {n: v for n, v in rec["baseline"]["scores"].items() if n != "chance"}
    assert rec["baseline"]["score"] == max(learned.values()) == learned[rec["baseline"]["strongest"]]


def test_a_tiny_budget_still_runs_one_candidate(tmp_path, monkeypatch):
    fs, guarded = _guarded(tmp_path)
    fake_training(monkeypatch)
    fake_clock(monkeypatch, 100.0)
    rec = auto.auto_search(RunConfig.from_dict(TINY), guarded, fixed=FIXED, budget_minutes=0.01, log=lambda m: None)
    assert [c["label"] for c in rec["candidates"]] == ["preset best"] and rec["chosen"]["number"] == 0


def test_auto_never_reads_test_and_chooses_the_same_with_a_garbage_test_split(tmp_path, monkeypatch):
    """Real tiny training (2 candidates, one with cv2): a raising and a NaN test split give the same choice."""
    import numpy as np

    fs, guarded = _guarded(tmp_path)
    fake_clock(monkeypatch, 100.0)
    base = RunConfig.from_dict(TINY)
    base.train.select = "cv2"
    first = auto.auto_search(base, guarded, fixed=FIXED, budget_minutes=3.4, log=lambda m: None)
    garbage = {k: ((np.full_like(x, np.nan), y) if k[1] == "test" else (x, y)) for k, (x, y) in fs.arrays.items()}
    second = auto.auto_search(base, FeatureSet(fs.path, fs.manifest, garbage), fixed=FIXED, budget_minutes=3.4,
                              log=lambda m: None)
    assert len(first["candidates"]) == 2 and all(c["state"] == "COMPLETE" for c in first["candidates"])
    assert first["chosen"]["selection"]["folds"] == 2
    assert first["chosen"]["number"] == second["chosen"]["number"]
    assert [c["score"] for c in second["candidates"]] == pytest.approx([c["score"] for c in first["candidates"]])
    assert second["baseline"]["scores"] == pytest.approx(first["baseline"]["scores"])


def test_a_set_without_validation_split_needs_cross_validation(tmp_path):
    from cvs_tf.config import ConfigError
    from cvs_tf.training.selection import merged_set

    fs = load_feature_set(two_modality_set(tmp_path))
    no_val = merged_set(fs, fs.modalities)  # train+val as train, no validation split
    with pytest.raises(ConfigError, match="scores candidates on the validation split, and toy has none for image, "
                                          "text: use --select cvK"):
        auto.auto_search(RunConfig.from_dict(TINY), no_val, fixed=FIXED, log=lambda m: None)
