"""The Trainer's public seams: a given feature set, initial weights, no checkpoint, TrainResult, progress line."""

import json

import keras
import numpy as np
import pytest

from cvs_tf.config import EARLY_STOPPING, ConfigError, RunConfig
from cvs_tf.data.store import load_feature_set
from cvs_tf.evaluation.table import cross_modal_recall, table_record
from cvs_tf.training.callbacks import monitor, progress_line, progress_terms
from cvs_tf.training.run_dir import RunDirError
from cvs_tf.training.trainer import Trainer, TrainResult
from tests.helpers import make_toy_featureset, tiny_config


def _config(dataset="not-a-dataset-anywhere", **train) -> RunConfig:
    short = {"dataset": dataset, "epochs": 2, "batch_size": 8, "steps_per_epoch": 2, "early_stopping": "none"}
    return tiny_config(attention=False, train={**short, **train}).validate()


@pytest.fixture(scope="module")
def fs(tmp_path_factory):
    return load_feature_set(make_toy_featureset(tmp_path_factory.mktemp("ds") / "toy", modalities={"image": 8, "text": 6}))


class Spy(keras.callbacks.Callback):
    """Records the weights fit starts from and whether a checkpoint directory exists at each epoch end."""

    def __init__(self, run_dir):
        super().__init__()
        self.run_dir, self.start, self.checkpointed = run_dir, None, []

    def on_train_begin(self, logs=None):
        if self.start is None:
            self.start = [np.array(w) for w in self.model.get_weights()]

    def on_epoch_end(self, epoch, logs=None):
        self.checkpointed.append((self.run_dir / "checkpoint").exists())


@pytest.mark.trains
def test_a_given_featureset_is_used_and_recorded_and_no_checkpoint_is_kept(fs, tmp_path):
    run = tmp_path / "run"
    spy, lines = Spy(run), []
    result = Trainer(_config(), run, featureset=fs, checkpoint=False, verbose=0, callbacks=[spy],
                     log=lines.append).run()
    assert isinstance(result, TrainResult) and result.run_dir == run
    assert result.metrics == json.loads((run / "metrics.json").read_text())
    resolved = json.loads((run / "config.json").read_text())["resolved"]
    assert resolved["dataset_manifest_sha256"] == fs.manifest_sha256
    assert resolved["dataset_dir"] == str(fs.path.resolve())
    assert spy.checkpointed == [False, False] and not (run / "checkpoint").exists()
    assert not [p for p in run.iterdir() if p.name.startswith(".checkpoint")]
    assert set(result.tables) == set(result.tables_all) == {"val", "test"}
    assert result.tables["test"].attrs["k"] == 50 and result.tables_all["test"].attrs["k"] == "all"
    assert result.metrics["test"] == table_record(result.tables["test"])
    assert result.metrics["val_all"] == table_record(result.tables_all["val"])
    assert result.model.modalities == ["image", "text"] and not hasattr(result.model, "tables")
    assert "recall" not in result.metrics                      # class-paired: no item has a partner
    epochs = [line for line in lines if " epoch " in line]
    assert len(epochs) == 2 and all("loss=" in e and "val_map=" in e for e in epochs)
    with pytest.raises(ValueError, match="checkpoint=True"):
        Trainer(_config(), run, featureset=fs, checkpoint=False, log=lines.append).run(resume=True)


@pytest.mark.trains
def test_init_weights_are_set_before_the_first_stage(fs, tmp_path):
    keras.utils.set_random_seed(7)
    from cvs_tf.models.factory import build_model

    init = build_model(_config(), fs).get_weights()
    spy = Spy(tmp_path / "run")
    Trainer(_config(seed=0), tmp_path / "run", featureset=fs, init_weights=init, verbose=0, callbacks=[spy],
            log=lambda m: None).run()
    assert len(spy.start) == len(init) and all(np.array_equal(a, b) for a, b in zip(spy.start, init))
    assert (tmp_path / "run" / "checkpoint" / "state.json").is_file()  # the default keeps one


@pytest.mark.trains
def test_init_weights_that_do_not_fit_are_refused_before_the_directory_exists(fs, tmp_path):
    with pytest.raises(ValueError, match="init_weights do not match"):
        Trainer(_config(), tmp_path / "run", featureset=fs, init_weights=[np.zeros(3)], log=lambda m: None).run()
    assert not (tmp_path / "run").exists()


@pytest.mark.trains
def test_resume_with_another_featureset_is_refused(fs, tmp_path):
    run = tmp_path / "run"
    Trainer(_config(epochs=1), run, featureset=fs, verbose=0, log=lambda m: None).run()
    other = load_feature_set(make_toy_featureset(tmp_path / "other", modalities={"image": 8, "text": 6}, seed=3))
    before = (run / "metrics.json").read_bytes()
    with pytest.raises(RunDirError, match="another feature set"):
        Trainer(_config(epochs=1), run, featureset=other, verbose=0, log=lambda m: None).run(resume=True)
    assert (run / "metrics.json").read_bytes() == before


def test_progress_line_shows_every_top_level_term_whatever_its_name():
    logs = {"loss": 1.0, "hinge": 0.5, "classification": 0.25, "a__b.hinge": 9.0, "val_loss": 2.0,
            "val_hinge": 9.0, "val_a__b.hinge": 9.0, "val_map": 0.75, "lr": 1e-3}
    assert progress_terms(logs) == ["loss", "hinge", "classification", "val_loss", "val_map"]
    assert progress_terms({"triplet": 1.0, "loss": 2.0}) == ["loss", "triplet"]  # loss first
    line = progress_line(0, 3, 10, logs, "early stop: best val_map 0.7500 at epoch 1")
    assert line == ("  stage 1 epoch 3/10: loss=1.0000 hinge=0.5000 classification=0.2500 val_loss=2.0000 "
                    "val_map=0.7500  (early stop: best val_map 0.7500 at epoch 1)")


def test_early_stopping_modes_have_one_source():
    from cvs_tf.cli.train import build_parser

    action = next(a for a in build_parser()._actions if a.dest == "early_stopping")
    assert tuple(action.choices) == EARLY_STOPPING
    assert [monitor(m) for m in EARLY_STOPPING] == [("val_map", 1.0), ("val_recall", 1.0), ("val_loss", -1.0),
                                                     ("val_map", 1.0)]
    with pytest.raises(ValueError, match="val_map, val_recall, val_loss, none"):
        monitor("val_acc")
    cfg = RunConfig()
    cfg.train.early_stopping = "val_acc"
    with pytest.raises(ConfigError, match="val_map, val_recall, val_loss, none"):
        cfg.validate()
    cfg.train.early_stopping, cfg.train.select = "val_recall", "cv5"
    with pytest.raises(ConfigError, match="val_recall selects on the validation split"):
        cfg.validate()


@pytest.mark.trains
def test_instance_paired_metrics_hold_recall(tmp_path):
    fs = load_feature_set(make_toy_featureset(tmp_path / "paired", paired=True, modalities={"image": 8, "text": 6}))
    result = Trainer(_config(), tmp_path / "run", featureset=fs, checkpoint=False, verbose=0, log=lambda _: None).run()
    recall = json.loads((tmp_path / "run" / "metrics.json").read_text())["recall"]
    assert set(recall) == {"val", "test"} and set(recall["test"]) == {"image", "text"}
    assert recall["test"]["text"] == {"image": cross_modal_recall(result.model, "test", dataset=fs)["text"]["image"]}
    assert set(recall["val"]["image"]["text"]) == {"1", "5", "10", "median_rank"}


@pytest.mark.trains
def test_val_recall_selects_the_epoch_of_the_best_validation_recall(tmp_path):
    from cvs_tf.training.callbacks import validation_recall

    fs = load_feature_set(make_toy_featureset(tmp_path / "paired", paired=True, modalities={"image": 8, "text": 6}))
    cfg = _config(epochs=4, early_stopping="val_recall", patience=10)
    result = Trainer(cfg, tmp_path / "run", featureset=fs, checkpoint=False, verbose=0, log=lambda _: None).run()
    stage = json.loads((tmp_path / "run" / "history.json").read_text())["stages"][0]
    curve = [e["val_recall"] for e in stage["epochs"]]
    assert len(curve) == 4 and all(0.0 <= v <= 1.0 for v in curve)
    assert stage["best_epoch"] == 1 + int(np.argmax(curve))        # first epoch of the highest value
    # the kept model is that epoch's: its validation recall is the curve's best, computed again
    assert validation_recall(result.model, fs, "val") == pytest.approx(max(curve), abs=1e-6)
    rec = cross_modal_recall(result.model, "val", dataset=fs)
    naive = np.mean([(rec[q][r]["1"] + rec[q][r]["5"] + rec[q][r]["10"]) / 3 for q in rec for r in rec[q]])
    assert max(curve) == pytest.approx(naive, abs=1e-6)


@pytest.mark.trains
def test_val_recall_is_refused_on_a_class_paired_set(fs, tmp_path):
    cfg = _config(epochs=1, early_stopping="val_recall")
    with pytest.raises(ConfigError, match="val_recall needs an instance-paired dataset"):
        Trainer(cfg, tmp_path / "run", featureset=fs, checkpoint=False, verbose=0, log=lambda _: None).run()
    assert not (tmp_path / "run").exists()
