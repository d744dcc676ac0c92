"""Extending a finished M-CVS/RVS run with a modality from another feature set (cvs_tf.training.extend, #14 item 5)."""

import hashlib
import json
import shutil

import keras
import numpy as np
import pytest

import cvs_tf
from cvs_tf.config import ConfigError
from cvs_tf.data.stats import feature_moments
from cvs_tf.data.store import load_feature_set
from cvs_tf.evaluation.table import cross_modal_table, table_record
from cvs_tf.models.factory import build_model
from cvs_tf.training.extend import (
    ExtendTrainer,
    ExtensionError,
    Source,
    extend_model,
    max_table_difference,
)
from cvs_tf.training.run_dir import RunDirError
from cvs_tf.training.trainer import Trainer
from tests.helpers import make_toy_featureset
from tests.training.extend_runs import source_config, toy_sets, train_source, tree_hashes

pytestmark = pytest.mark.trains

EXTEND = {"train": {"epochs": 2, "steps_per_epoch": 2}, "verbose": 0}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("extend")
    sets = toy_sets(root)
    return {**sets, "root": root, "mcvs": train_source("mcvs", sets["d1"], root / "mcvs", standardize=True)}


def _weights(layers):
    return [np.array(w) for layer in layers for w in layer.get_weights()]


def _check_extension(runs, space, dataset, out, blocks, partners):
    """Extend ``runs[space]`` with audio from ``dataset``; the checks every extension must pass."""
    src = runs[space]
    before, lines = tree_hashes(src), []
    result = ExtendTrainer(src, "audio", out, dataset=str(dataset), log=lines.append, **EXTEND).run()
    assert tree_hashes(src) == before  # the source run is only read
    old, new = cvs_tf.load_model(src), result.model
    assert new.plan[-1]["pairs"] == new.plan[-1]["blocks"] == partners and sorted(new.blocks) == blocks
    for k in range(old.num_stages):  # every earlier component bit-identical after the new stage trained
        a, b = _weights(old.stage_components(k)), _weights(new.stage_components(k))
        assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
    keras.utils.set_random_seed(0)  # the new stage's starting point, as the trainer made it: its branch trained
    start = extend_model(old, "audio", 6, [p for p, _ in partners])
    assert not any(np.array_equal(x, y) for x, y in zip(_weights([start.branches["audio"]]),
                                                        _weights([new.branches["audio"]])))
    fs2 = load_feature_set(dataset)  # standardisation: the new branch from the new set's train split only
    mean, std = feature_moments(fs2.x("audio", "train"))
    np.testing.assert_array_equal(new.branches["audio"].feature_mean.numpy(), mean)
    known = partners[0][0]  # (a shared modality keeps its statistics from the source set: checked bitwise above)
    assert not np.allclose(new.branches[known].feature_mean.numpy(), feature_moments(fs2.x(known, "train"))[0])
    src_metrics, fs1 = json.loads((src / "metrics.json").read_text()), load_feature_set(runs["d1"])
    for split in ("val", "test"):  # the known modalities' tables on the source dataset, recomputed
        for k, key in ((50, split), (None, f"{split}_all")):
            got = table_record(cross_modal_table(new, split=split, k=k, dataset=fs1, modalities=old.modalities))
            assert max_table_difference(got, src_metrics[key]) <= 1e-6
    assert result.metrics["extension"]["unchanged"] and "unchanged" in lines[-1]
    cfg = json.loads((out / "config.json").read_text())
    origin, ext = cfg["resolved"]["extended_from"], cfg["resolved"]["extension"]
    assert origin["run_dir"] == str(src.resolve()) and origin["config_sha256"] == hashlib.sha256(
        (src / "config.json").read_bytes()).hexdigest()
    assert origin["metrics"]["test"] == src_metrics["test"]["overall_mean"]
    assert ext["dataset_manifest_sha256"] == load_feature_set(dataset).manifest_sha256 and ext["modality"] == "audio"
    assert cfg["model"]["stages"] == cfg["resolved"]["stages"] == [*old.stages, ["audio"]]
    history = json.loads((out / "history.json").read_text())["stages"]
    assert [len(h["epochs"]) for h in history] == [1, 2]  # stage 1 from the source run, stage 2 trained here
    reloaded = cvs_tf.load_model(out)
    assert reloaded.plan == new.plan and reloaded.partners == {"audio": [p for p, _ in partners]}
    x = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
    np.testing.assert_array_equal(reloaded.embed("audio", x).numpy(), new.embed("audio", x).numpy())
    return result, ext


def test_mcvs_extension_links_the_new_modality_to_the_known_ones_its_set_holds(runs):
    result, ext = _check_extension(runs, "mcvs", runs["d2"], runs["root"] / "mcvs+audio",
                                   ["image__text", "text__audio"], [("text", "audio")])
    assert ext["partners"] == ["text"] and ext["absent"] == ["image"]  # image keeps its weights, gets no block
    assert result.metrics["test"]["modalities"] == ["text", "audio"]  # the new set's tables


@pytest.mark.slow
def test_rvs_extension_aligns_the_new_modality_to_the_reference(runs):
    runs["rvs"] = runs.get("rvs") or train_source("rvs", runs["d1"], runs["root"] / "rvs", reference="image",
                                                   standardize=True)
    result, ext = _check_extension(runs, "rvs", runs["d3"], runs["root"] / "rvs+audio",
                                   ["image__audio", "image__text"], [("image", "audio")])
    assert ext == {**ext, "partners": ["image"], "absent": ["text"]}
    new = result.model
    assert new.blocks["image__audio"].reference is new.shared_reference and not new.shared_reference.trainable


@pytest.mark.slow
def test_an_extended_run_extends_again(runs, tmp_path):
    first = ExtendTrainer(runs["mcvs"], "audio", tmp_path / "first", dataset=str(runs["d2"]), **EXTEND).run()
    d4 = make_toy_featureset(tmp_path / "d4", modalities={"audio": 6, "video": 4}, seed=4)
    before = tree_hashes(tmp_path / "first")
    second = ExtendTrainer(tmp_path / "first", "video", tmp_path / "second", dataset=str(d4), **EXTEND).run()
    assert tree_hashes(tmp_path / "first") == before and second.metrics["extension"]["unchanged"]
    model = cvs_tf.load_model(tmp_path / "second")
    assert model.stages == [["image", "text"], ["audio"], ["video"]]
    assert model.partners == {"audio": ["text"], "video": ["audio"]} and sorted(model.blocks) == [
        "audio__video", "image__text", "text__audio"]
    for m in ("image", "text", "audio"):
        a, b = _weights([first.model.branches[m]]), _weights([model.branches[m]])
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    history = json.loads((tmp_path / "second" / "history.json").read_text())["stages"]
    assert [h["name"] for h in history] == ["1-image_text", "2-audio", "3-video"]


@pytest.mark.slow
def test_a_mixed_precision_source_extends_in_its_precision(runs, tmp_path):
    """A reloaded model's branches are float32; the source run embedded in bfloat16, and so does its extension."""
    cfg = source_config("mcvs", runs["d1"])
    cfg.train.mixed_precision = True
    Trainer(cfg, tmp_path / "src", featureset=load_feature_set(runs["d1"]), checkpoint=False, verbose=0,
            log=lambda m: None).run()
    result = ExtendTrainer(tmp_path / "src", "audio", tmp_path / "new", dataset=str(runs["d2"]), **EXTEND).run()
    assert result.metrics["extension"] == {**result.metrics["extension"], "unchanged": True, "max_abs_difference": 0.0}
    assert {str(b.dtype_policy.name) for b in result.model.branches.values()} == {"mixed_bfloat16"}


def _refusal(src, out, needle, modality="audio", dataset=None, **kw):
    before = tree_hashes(src.run_dir if isinstance(src, Source) else src)
    with pytest.raises(ValueError, match=needle) as info:
        ExtendTrainer(src, modality, out, dataset=str(dataset), **kw).run()
    assert len(str(info.value).splitlines()) == 1 and not out.exists()
    assert tree_hashes(src.run_dir if isinstance(src, Source) else src) == before


def _untrained_source(space, dataset, run_dir, **model):
    """A Source around a freshly built model: what the plan checks read (no training needed)."""
    fs = load_feature_set(dataset)
    cfg = source_config(space, dataset, **model)
    return Source(run_dir, cfg, {}, build_model(cfg, fs), fs, {}, {}, run_dir / "model.keras")


@pytest.mark.parametrize("case,needle", [
    ("already", "already in run"), ("missing", "has no modality 'video'"), ("no-known", "lacks what a new stage"),
    ("no-reference", "lacks what .*the reference image"), ("classes", "classes differ .*3 classes vs 4"),
    ("dim", "dim 5, the run's text branch takes 12"), ("override", "cannot set train.dim"),
    ("labels", "has multi-label items, the run's dataset toy single-label ones"),
])
def test_bad_extensions_are_refused_in_one_line_and_write_nothing(tmp_path, case, needle):
    d1 = make_toy_featureset(tmp_path / "d1", modalities={"image": 16, "text": 12})
    made = {"no-known": {"audio": 6, "video": 4}, "dim": {"text": 5, "audio": 6}}.get(case, {"text": 12, "audio": 6})
    ds = make_toy_featureset(tmp_path / "d2", modalities=made, n_classes=3 if case == "classes" else 4,
                             label_kind="multi" if case == "labels" else "single")
    space, model = ("rvs", {"reference": "image"}) if case == "no-reference" else ("mcvs", {})
    (tmp_path / "src").mkdir()
    src = _untrained_source(space, d1, tmp_path / "src", **model)
    modality = {"already": "text", "missing": "video"}.get(case, "audio")
    kw = {"train": {"dim": 4}} if case == "override" else {}
    _refusal(src, tmp_path / "new", needle, modality=modality, dataset=ds, **kw)


def test_unfinished_one_stage_and_inside_the_source_are_refused(runs, tmp_path):
    _refusal(runs["mcvs"], runs["mcvs"] / "extended", "outside the source run", dataset=runs["d2"])
    unfinished = tmp_path / "unfinished"
    shutil.copytree(runs["mcvs"], unfinished)
    (unfinished / "metrics.json").unlink()
    _refusal(unfinished, tmp_path / "new", "not a finished run", dataset=runs["d2"])
    one_stage = tmp_path / "one-stage"
    one_stage.mkdir()
    cfg = json.loads((runs["mcvs"] / "config.json").read_text())
    cfg["model"].update(space="cvs", stages=None)
    (one_stage / "config.json").write_text(json.dumps(cfg))
    _refusal(one_stage, tmp_path / "new", "only a multi-stage space can be extended .*mcvs or rvs", dataset=runs["d2"])
    with pytest.raises(RunDirError, match="missing"):
        ExtendTrainer(tmp_path, "audio", tmp_path / "new", dataset=str(runs["d2"]))
    assert issubclass(ExtensionError, ValueError) and not (tmp_path / "new").exists()


def test_partners_restrict_the_plan_and_are_checked():
    from cvs_tf.spaces.mcvs import MCVSModel

    dims, stages = {"image": 4, "text": 3, "audio": 2}, [["image", "text"], ["audio"]]
    model = MCVSModel(dims, 3, stages=stages, dim=4, partners={"audio": ["text"]})
    assert model.plan[1] == {"blocks": [("text", "audio")], "pairs": [("text", "audio")]}
    assert MCVSModel.from_config(model.get_config()).plan == model.plan
    for bad in ({"audio": ["video"]}, {"image": ["text"]}, {"audio": []}):
        with pytest.raises(ConfigError, match="partners of"):
            MCVSModel(dims, 3, stages=stages, dim=4, partners=bad)
