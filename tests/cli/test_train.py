"""`python -m cvs_tf.train` in-process: run directory contents, TensorBoard scalars, resume, reload and bad input."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from cvs_tf.cli.train import main, parse_args
from cvs_tf.data.store import load_feature_set
from cvs_tf.training.run_dir import load_run
from cvs_tf.utils.cli import run_cli
from tests.helpers import Crash, make_toy_featureset, write_small_config

pytestmark = pytest.mark.trains

FAST = ["--epochs", "2", "--batch-size", "8", "--steps-per-epoch", "3", "--no-jit", "--quiet", "--early-stopping", "none"]


def _small(tmp_path, monkeypatch, name="ds", **kw):
    """A toy set plus a config that shrinks D to 16 (a run config file, like users would write)."""
    ds = make_toy_featureset(tmp_path / name, **kw)
    cfg = write_small_config(tmp_path / "small.json")
    return ds, cfg


def test_parse_args_defaults_follow_the_thesis():
    from cvs_tf.cli.train import config_from_args

    cfg = config_from_args(parse_args([]))
    assert (cfg.model.dim, cfg.train.batch_size, cfg.train.lr) == (512, 128, 1e-3)
    assert cfg.loss.margins == (1.0, 1.0, 1.0) and cfg.loss.gammas == (0.25, 0.25, 0.5)
    assert cfg.train.dataset is None  # the embedded default dataset


def test_mcvs_run_directory_layout_and_tensorboard(tmp_path, monkeypatch):
    ds, cfg = _small(tmp_path, monkeypatch)
    out = tmp_path / "run"
    assert main(["--space", "mcvs", "--dataset", str(ds), "--config", str(cfg), "--out", str(out), *FAST]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["seed"] == 0 and config["resolved"]["seed"] == 0
    assert config["resolved"]["dataset_manifest_sha256"] == load_feature_set(ds).manifest_sha256
    assert config["resolved"]["stages"] == [["image", "text"], ["audio"]]
    stages = sorted(p.name for p in (out / "stages").iterdir())
    assert stages == ["1-image_text", "2-audio"]
    for s in stages:
        assert (out / "stages" / s / "model.keras").is_file()
    history = json.loads((out / "history.json").read_text())
    assert [len(h["epochs"]) for h in history["stages"]] == [2, 2]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["protocol"] == "independent" and metrics["data_label"] == "synthetic stand-in"
    assert 0.0 <= metrics["test"]["overall_mean"] <= 1.0
    assert [r["attention_blocks"] for r in metrics["stages"]] == [1, 3]
    assert (out / "eval" / "test-independent-k50.md").is_file()

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for s, pair_tags in (("stage1-image_text", ["image__text.inter"]),
                         ("stage2-audio", ["image__audio.inter", "text__audio.inter"])):
        for split in ("train", "validation"):
            acc = EventAccumulator(str(out / "tensorboard" / s / split))
            acc.Reload()
            tags = set(acc.Tags()["tensors"])
            for t in ["loss/loss", "loss/classification", "loss/triplet"] + [f"loss/{p}" for p in pair_tags]:
                assert t in tags, (s, split, t, sorted(tags))
            steps = [e.step for e in acc.Tensors("loss/loss")]
            assert steps == [1, 2]  # one point per epoch, no step twice
        acc = EventAccumulator(str(out / "tensorboard" / s / "train"))
        acc.Reload()
        assert "optim/lr" in acc.Tags()["tensors"]


def test_reloaded_stage_model_reproduces_embed(tmp_path, monkeypatch):
    ds, cfg = _small(tmp_path, monkeypatch)
    out = tmp_path / "run"
    main(["--space", "rvs", "--reference", "text", "--dataset", str(ds), "--config", str(cfg), "--out", str(out), *FAST])
    model, fs, _ = load_run(out)
    again = keras.models.load_model(sorted((out / "stages").iterdir())[-1] / "model.keras", compile=False)
    for m in model.modalities:
        np.testing.assert_allclose(again.embed(m, fs.x(m, "test")).numpy(), model.embed(m, fs.x(m, "test")).numpy(), atol=1e-6)


def test_kill_and_resume_matches_uninterrupted_run(tmp_path, monkeypatch):
    ds, cfg = _small(tmp_path, monkeypatch)
    args = ["--space", "mcvs", "--dataset", str(ds), "--config", str(cfg), "--epochs", "3", "--batch-size", "8",
            "--steps-per-epoch", "4", "--no-jit", "--quiet", "--early-stopping", "none"]
    ref = tmp_path / "ref"
    main([*args, "--out", str(ref)])
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):  # killed in stage 2, epoch 2, after batch 1
        _crash_in_stage2(args, run)
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    assert (state["stage"], state["epoch"]) == (1, 1)
    assert main(["--resume", "--out", str(run), "--quiet"]) == 0
    h_ref = json.loads((ref / "history.json").read_text())
    h_run = json.loads((run / "history.json").read_text())
    assert [[e["epoch"] for e in s["epochs"]] for s in h_run["stages"]] == [[1, 2, 3], [1, 2, 3]]
    for a, b in zip(h_ref["stages"], h_run["stages"]):
        for ea, eb in zip(a["epochs"], b["epochs"]):
            assert ea["loss"] == pytest.approx(eb["loss"], abs=1e-6)
    m_ref, fs, _ = load_run(ref)
    m_run, _, _ = load_run(run)
    for a, b in zip(m_ref.get_weights(), m_run.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard" / "stage2-audio" / "train"))
    acc.Reload()
    assert [e.step for e in acc.Tensors("loss/loss")] == [1, 2, 3]


def _crash_in_stage2(args, run):
    """Run until stage 2 (M-CVS adds audio), epoch 2, batch 1, then 'kill' the process."""
    from cvs_tf.cli import train as train_cli

    class StageAware(Crash):
        def on_train_batch_end(self, batch, logs=None):
            if self.model.current_stage == 1:
                super().on_train_batch_end(batch, logs)

    train_cli.main([*args, "--out", str(run)], callbacks=[StageAware(1, 1)])


@pytest.mark.parametrize("argv,needle", [
    (["--modalities", "image", "smell"], "unknown modality smell"),
    (["--space", "rvs", "--reference", "text", "--modalities", "image", "audio"], "must include the RVS reference"),
    (["--space", "cvs", "--modalities", "image"], "at least 2 modalities"),
    (["--space", "quantum"], "invalid choice"),
    (["--dataset", "no/such/dir"], "no such dataset"),
    (["--epochs", "0"], "train.epochs must be >= 1"),
])
def test_bad_input_is_one_error_line_and_exit_2(tmp_path, monkeypatch, capsys, argv, needle):
    ds, cfg = _small(tmp_path, monkeypatch)
    base = [] if "--dataset" in argv else ["--dataset", str(ds)]
    code = run_cli(main, [*base, *FAST, *argv, "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error:") and needle in err[0], err


def test_rvs_reference_missing_from_dataset(tmp_path, monkeypatch, capsys):
    ds = make_toy_featureset(tmp_path / "nt", modalities={"image": 8, "audio": 5})
    code = run_cli(main, ["--space", "rvs", "--reference", "text", "--dataset", str(ds), *FAST])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "reference modality 'text' is not in dataset" in err


def test_resume_without_a_run_is_an_error(tmp_path, capsys):
    assert run_cli(main, ["--resume", "--out", str(tmp_path / "nothing")]) == 2
    assert "no run to resume" in capsys.readouterr().err


@pytest.mark.slow
def test_example_command_runs_as_a_subprocess(tmp_path):
    """The user's example on the embedded default data (Tux-12), as a real process."""
    r = subprocess.run([sys.executable, "-m", "cvs_tf.train", "--space", "rvs", "--reference", "text",
                        "--epochs", "1", "--out", str(tmp_path / "r"), "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "real features" in r.stdout
