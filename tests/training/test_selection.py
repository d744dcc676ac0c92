"""Model selection by K-fold CV (train.select cvK): stratified folds that keep pairs together, the config values, no test read."""

import json

import numpy as np
import pytest

from cvs_tf.config import ConfigError, RunConfig, select_folds
from cvs_tf.data.store import FeatureSet, load_feature_set
from cvs_tf.training.selection import (
    SELECTION_FILE,
    check_folds,
    cross_validate,
    fold_ids,
    fold_set,
    merged_set,
    train_selected,
)
from tests.helpers import make_toy_featureset
from tests.tuning.helpers import NoTest

TINY = {"model": {"dim": 8}, "train": {"batch_size": 16, "jit": False, "epochs": 2, "select": "cv2"}}


def _set(tmp_path, **kw):
    return load_feature_set(make_toy_featureset(tmp_path / "toy", modalities={"image": 8, "text": 6}, **kw))


@pytest.mark.parametrize("value,folds", [("val", None), ("cv2", 2), ("cv5", 5), ("cv10", 10), ("cv1", None),
                                         ("cv11", None), ("cv99", None), ("cv", None), ("foo", None), ("5", None)])
def test_select_values(value, folds):
    assert select_folds(value) == folds
    cfg = RunConfig()
    cfg.train.select = value
    if folds is None and value != "val":
        with pytest.raises(ConfigError, match=f"train.select must be val or cvK with K in 2..10.*got '{value}'"):
            cfg.validate()
    else:
        cfg.validate()


@pytest.mark.parametrize("paired", [True, False])
def test_folds_are_stratified_cover_every_row_once_and_keep_pairs_together(tmp_path, paired):
    fs = _set(tmp_path, paired=paired, n_train=40)
    ids = fold_ids(fs, ["image", "text"], 4, seed=3)
    for m in ("image", "text"):
        y = np.concatenate([fs.y(m, "train"), fs.y(m, "val")])
        assert ids[m].shape == y.shape and set(ids[m].tolist()) == {0, 1, 2, 3}
        for c in np.unique(y):  # each class spread evenly: fold sizes differ by at most one item
            sizes = np.bincount(ids[m][y == c], minlength=4)
            assert sizes.max() - sizes.min() <= 1, (m, c, sizes)
    if paired:
        assert np.array_equal(ids["image"], ids["text"])
        part = fold_set(fs, ids, 1)
        assert np.array_equal(part.y("image", "val"), part.y("text", "val"))
        assert part.count("image", "val") == int((ids["image"] == 1).sum())
    assert np.array_equal(fold_ids(fs, ["image", "text"], 4, seed=3)["text"], ids["text"])  # seeded


def test_fold_and_merged_sets(tmp_path):
    fs = _set(tmp_path, paired=True)
    ids = fold_ids(fs, ["image", "text"], 2, seed=0)
    part, full = fold_set(fs, ids, 0), merged_set(fs, ["image", "text"])
    pooled = fs.count("image", "train") + fs.count("image", "val")
    assert part.count("image", "train") + part.count("image", "val") == pooled and part.count("image", "test") == 0
    assert len(part.x("image", "test")) == 0
    assert full.count("text", "train") == pooled and full.count("text", "val") == 0
    assert np.array_equal(full.x("text", "test"), fs.x("text", "test"))
    assert part.manifest_sha256 == full.manifest_sha256 == fs.manifest_sha256 and part.path == fs.path


def test_fewer_items_per_class_than_folds_is_refused(tmp_path):
    fs = _set(tmp_path, n_train=12)  # 3 items per class in train+val
    cfg = RunConfig.from_dict(TINY)
    cfg.train.select = "cv3"
    assert check_folds(cfg, fs) == 3
    cfg.train.select = "cv4"
    with pytest.raises(ConfigError, match=r"--select cv4: class 'class\d' has 3 image item\(s\) in train\+val of "
                                          r"toy, fewer than the 4 folds"):
        check_folds(cfg, fs)


def test_cross_validation_never_reads_test_and_the_final_run_uses_its_epochs(tmp_path):
    """Real tiny training: the folds run on a set whose test split raises; the choice equals the one made on
    the same set with NaN test features; the final run trains the chosen epochs on train+val and then tests."""
    fs = _set(tmp_path, paired=True)
    guarded = NoTest(fs.path, fs.manifest, fs.arrays)
    cfg = RunConfig.from_dict(TINY)
    lines = []
    sel = cross_validate(cfg, guarded, log=lines.append)
    garbage = {k: ((np.full_like(x, np.nan), y[::-1].copy()) if k[1] == "test" else (x, y))
               for k, (x, y) in fs.arrays.items()}
    again = cross_validate(cfg, FeatureSet(fs.path, fs.manifest, garbage), log=lambda m: None)
    assert again["stage_epochs"] == sel["stage_epochs"] and again["fold_scores"] == pytest.approx(sel["fold_scores"])
    assert sum(line.startswith("cv fold ") for line in lines) == 2 and lines[-1].startswith("cv2: chosen ")
    assert sel["folds"] == 2 and len(sel["fold_scores"]) == 2 and 1 <= sel["stage_epochs"][0] <= 2
    assert sel["score"] == pytest.approx(np.mean(sel["fold_scores"]))
    mean = sel["mean_curves"]["val_map"][0]
    assert sel["stage_epochs"][0] == int(np.argmax(mean)) + 1

    out = tmp_path / "run"
    result = train_selected(cfg, out, featureset=fs, selection=sel, verbose=0, log=lambda m: None)
    history = json.loads((out / "history.json").read_text())["stages"][0]
    assert len(history["epochs"]) == sel["stage_epochs"][0]
    saved = json.loads((out / "config.json").read_text())
    assert saved["train"]["select"] == "cv2" and saved["train"]["early_stopping"] == "none"
    assert saved["resolved"]["selection"]["stage_epochs"] == sel["stage_epochs"]
    assert saved["resolved"]["dataset_manifest_sha256"] == fs.manifest_sha256
    assert json.loads((out / SELECTION_FILE).read_text())["fold_scores"] == sel["fold_scores"]
    assert result.metrics["val"] is None and result.metrics["test"]["overall_mean"] is not None


@pytest.mark.trains
def test_a_cv_config_does_not_train_without_its_selection(tmp_path):
    from cvs_tf.training.trainer import Trainer

    with pytest.raises(ConfigError, match="train.select cv2: its epochs come from cvs_tf.training.selection"):
        Trainer(RunConfig.from_dict(TINY), tmp_path / "run")


@pytest.mark.slow
@pytest.mark.parametrize("space,label_kind", [("mcvs", "single"), ("cvs", "multi")])
def test_multi_stage_spaces_and_multi_label_class_paired_sets(tmp_path, space, label_kind):
    """Each stage trains for its own chosen epochs; multi-hot labels are stratified by their first class."""
    fs = load_feature_set(make_toy_featureset(tmp_path / "toy", label_kind=label_kind))
    cfg = RunConfig.from_dict({**TINY, "model": {"dim": 8, "space": space}})
    out = tmp_path / "run"
    result = train_selected(cfg, out, featureset=fs, verbose=0, log=lambda m: None)
    sel = json.loads((out / SELECTION_FILE).read_text())
    stages = json.loads((out / "history.json").read_text())["stages"]
    assert len(sel["stage_epochs"]) == len(stages) == (2 if space == "mcvs" else 1) and not sel["paired"]
    assert [len(s["epochs"]) for s in stages] == sel["stage_epochs"]
    assert result.metrics["test"]["overall_mean"] is not None
