"""Deterministic training (issue #20): two same-seed runs in two processes are equal bit for bit."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from cvs_tf.cli.train import main
from cvs_tf.training.determinism import op_determinism, op_determinism_enabled
from tests.helpers import make_toy_featureset
from tests.training.run_equality import assert_bitwise_equal_runs

pytestmark = pytest.mark.trains

REPO = Path(__file__).resolve().parents[2]
THREE = {"image": 8, "text": 6, "audio": 5}
SMALL = ["--epochs", "2", "--batch-size", "8", "--steps-per-epoch", "3", "--quiet", "--early-stopping", "val_map",
         "--patience", "2"]


def _setup(tmp_path, train=None, **kw):
    ds = make_toy_featureset(tmp_path / "ds", modalities=THREE, **kw)
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"model": {"dim": 16}, "train": train or {}}))
    return ["--dataset", str(ds), "--config", str(cfg), *SMALL]


def _train_twice(tmp_path, args) -> tuple[Path, Path]:
    """The same command in two fresh processes at once (op determinism is process-global)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    outs = [tmp_path / "a", tmp_path / "b"]
    procs = [subprocess.Popen([sys.executable, "-m", "cvs_tf.train", *args, "--out", str(o)], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for o in outs]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    return outs[0], outs[1]


def test_two_same_seed_mcvs_runs_in_one_process_are_bitwise_equal(tmp_path):
    """The fast variant (no XLA, no attention): M-CVS with validation-mAP model selection."""
    args = [*_setup(tmp_path), "--space", "mcvs", "--no-jit", "--no-attention"]
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert main([*args, "--out", str(out)]) == 0
    assert json.loads((a / "config.json").read_text())["train"]["deterministic"] is True  # the default
    assert len(json.loads((a / "history.json").read_text())["stages"]) == 2  # stage 2 adds audio
    assert_bitwise_equal_runs(a, b)


@pytest.mark.slow
def test_two_same_seed_mcvs_runs_in_two_processes_are_bitwise_equal(tmp_path):
    """M-CVS with attention and the default XLA mode (``loss`` under op determinism)."""
    a, b = _train_twice(tmp_path, [*_setup(tmp_path), "--space", "mcvs"])
    assert_bitwise_equal_runs(a, b)


@pytest.mark.slow
@pytest.mark.parametrize("space,jit", [("rvs", "loss"), ("cvs", "off"), ("rvs", "full")])
def test_two_same_seed_runs_are_bitwise_equal_in_every_xla_mode(tmp_path, space, jit):
    args = _setup(tmp_path, train={"jit": jit}, paired=space == "cvs")
    a, b = _train_twice(tmp_path, [*args, "--space", space])
    assert_bitwise_equal_runs(a, b)


class _Seen(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.states = []

    def on_train_batch_end(self, batch, logs=None):
        self.states.append(op_determinism_enabled())


def test_the_flags_set_the_config_field(tmp_path):
    from cvs_tf.cli.train import config_from_args, parse_args

    cfg = tmp_path / "off.json"
    cfg.write_text(json.dumps({"train": {"deterministic": False}}))
    assert config_from_args(parse_args([])).train.deterministic is True
    assert config_from_args(parse_args(["--no-deterministic"])).train.deterministic is False
    assert config_from_args(parse_args(["--config", str(cfg)])).train.deterministic is False
    assert config_from_args(parse_args(["--config", str(cfg), "--deterministic"])).train.deterministic is True


@pytest.mark.parametrize("flag,want", [([], True), (["--no-deterministic"], False)])
def test_op_determinism_is_on_for_the_run_only(tmp_path, flag, want):
    args = [*_setup(tmp_path), "--epochs", "1", "--no-jit", "--no-attention", *flag]
    seen = _Seen()
    assert not op_determinism_enabled()
    assert main([*args, "--out", str(tmp_path / "run")], callbacks=[seen]) == 0
    assert seen.states and set(seen.states) == {want}
    assert not op_determinism_enabled()  # restored: the process is as it was
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["deterministic"] is want


def test_op_determinism_block_leaves_an_enabled_process_enabled():
    with op_determinism(True):
        with op_determinism(True):
            assert op_determinism_enabled()
        assert op_determinism_enabled()  # the inner block did not turn it off
        with op_determinism(False):
            assert op_determinism_enabled()  # off means: leave the process as it is
    assert not op_determinism_enabled()


def test_the_feature_pipeline_is_ordered_and_a_function_of_seed_and_step(tmp_path):
    from cvs_tf.data.pipeline import FeatureBank, feature_dataset
    from cvs_tf.data.store import load_feature_set

    fs = load_feature_set(make_toy_featureset(tmp_path / "ds", modalities=THREE))
    bank = FeatureBank(fs, list(THREE), "train")
    ds = feature_dataset(bank, 8, seed=3, num_steps=4)
    assert ds.options().deterministic is True
    first, again = ([b[0]["image"].numpy() for b in d] for d in (ds, feature_dataset(bank, 8, seed=3, num_steps=4)))
    assert all(a.tobytes() == b.tobytes() for a, b in zip(first, again, strict=True))
