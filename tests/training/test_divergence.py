"""Divergence checks at each epoch end and at the final evaluation (issue #20): what each check catches, CPU-independently."""

import keras
import numpy as np
import pytest

from cvs_tf.cli.evaluate import main as evaluate
from cvs_tf.cli.train import main as train
from cvs_tf.config import RunConfig
from cvs_tf.data.store import load_feature_set
from cvs_tf.training import Trainer
from cvs_tf.training.callbacks import TrainingDivergedError, check_finite, check_weights
from cvs_tf.utils.cli import run_cli
from tests.helpers import make_toy_featureset

KEPT = "RUN/checkpoint keeps the last good epoch (2)"


def test_a_non_finite_loss_term_is_divergence():
    with pytest.raises(TrainingDivergedError, match=r"stage 2 epoch 3: training loss is nan \(diverged\).*epoch \(2\)"):
        check_finite({"loss": float("nan"), "classification": 0.5}, stage=1, epoch=3, kept=KEPT)
    # a term alone: the total can stay finite when a term is masked or weighted 0
    with pytest.raises(TrainingDivergedError, match="training image__text.inter is inf"):
        check_finite({"loss": 1.0, "image__text.inter": float("inf")}, stage=1, epoch=3, kept=KEPT)
    with pytest.raises(TrainingDivergedError, match="training loss is nan"):
        check_finite({"classification": 0.5}, stage=0, epoch=1, kept=KEPT)  # no loss logged at all
    check_finite({"loss": 1.0, "val_loss": float("nan"), "lr": 1e-3}, stage=0, epoch=1, kept=KEPT)


def test_a_non_finite_trainable_weight_is_divergence_and_a_frozen_one_is_not_checked():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="a"), keras.layers.Dense(2, name="b")])
    check_weights(model, stage=0, epoch=1, kept=KEPT)
    bias = model.get_layer("b").bias
    bias.assign(np.array([0.0, np.inf], np.float32))
    with pytest.raises(TrainingDivergedError, match=r"stage 1 epoch 4: trainable weight \S*b/bias holds NaN or Inf"):
        check_weights(model, stage=0, epoch=4, kept=KEPT)
    model.get_layer("a").kernel.assign(np.full((3, 2), np.nan, np.float32))
    with pytest.raises(TrainingDivergedError, match=r"a/kernel \(and 1 more\)"):
        check_weights(model, stage=0, epoch=4, kept=KEPT)
    model.get_layer("a").trainable = model.get_layer("b").trainable = False
    check_weights(model, stage=0, epoch=4, kept=KEPT)


class _DivergesAfterTraining(Trainer):
    """Weights go NaN after the last epoch passed its checks, just before the final tables."""

    def final_metrics(self, reports):
        w = next(v for v in self._model.trainable_weights if v.path.endswith("kernel"))
        w.assign(np.full(w.shape, np.nan, np.float32))
        return super().final_metrics(reports)


def test_non_finite_final_embeddings_say_the_run_diverged(tmp_path):
    fs = load_feature_set(make_toy_featureset(tmp_path / "ds", modalities={"image": 8, "text": 6}))
    cfg = RunConfig.from_dict({"model": {"dim": 16, "attention": False},
                               "train": {"epochs": 1, "batch_size": 8, "steps_per_epoch": 2, "jit": False,
                                         "early_stopping": "none"}})
    run = tmp_path / "run"
    with pytest.raises(TrainingDivergedError) as err:
        _DivergesAfterTraining(cfg, run, featureset=fs, verbose=0, log=lambda _: None).run()
    msg = str(err.value)
    assert "\n" not in msg
    for needle in ("the run diverged", "stage 1 [1-image_text]", "val split", "NaN or Inf", "no metrics.json",
                   "stages/1-image_text/model.keras"):
        assert needle in msg, (needle, msg)
    assert not (run / "metrics.json").exists() and (run / "stages" / "1-image_text" / "model.keras").is_file()


@pytest.mark.trains
def test_evaluate_on_a_diverged_model_says_the_run_diverged(tmp_path, capsys):
    ds = make_toy_featureset(tmp_path / "ds", modalities={"image": 8, "text": 6})
    run = tmp_path / "run"
    assert train(["--dataset", str(ds), "--epochs", "1", "--batch-size", "8", "--steps-per-epoch", "2", "--dim", "16",
                  "--no-jit", "--no-attention", "--quiet", "--early-stopping", "none", "--out", str(run)]) == 0
    saved = run / "stages" / "1-image_text" / "model.keras"
    model = keras.saving.load_model(saved)  # a run diverged before #20's checks: its saved model is NaN
    model.set_weights([np.full_like(w, np.nan) if w.dtype.kind == "f" else w for w in model.get_weights()])
    model.save(saved)
    capsys.readouterr()
    assert run_cli(evaluate, [str(run), "--out", str(tmp_path / "t.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "the run diverged" in err[0] and "stage 1" in err[0], err
    assert not list(tmp_path.glob("t.*"))
