"""`python -m cvs_tf.train` against kills, races, changed data and bad run directories (issue #12)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from cvs_tf.cli.evaluate import main as evaluate
from cvs_tf.cli.train import main
from cvs_tf.data.store import carve_validation, load_feature_set, save_feature_set
from cvs_tf.training.run_dir import load_run
from cvs_tf.utils.cli import run_cli
from tests.conftest import make_toy_featureset
from tests.training.run_equality import assert_bitwise_equal_runs

FAST = ["--epochs", "2", "--batch-size", "8", "--steps-per-epoch", "3", "--no-jit", "--quiet", "--early-stopping", "none",
        "--no-attention"]
REPO = Path(__file__).resolve().parents[2]
TWO = {"image": 8, "text": 6}  # two small modalities without attention: the cheapest model to trace


def _toy(path, **kw):
    return make_toy_featureset(path, modalities=kw.pop("modalities", TWO), **kw)


def _cfg(tmp_path):
    cfg = tmp_path / "small.json"
    cfg.write_text(json.dumps({"model": {"dim": 16}}))
    return cfg


def _args(ds, cfg, *extra):
    return ["--dataset", str(ds), "--config", str(cfg), *FAST, *extra]


def _one_error(capsys, code, *needles):
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("error:"), err
    for n in needles:
        assert n in err[0], (n, err[0])
    return err[0]


def _snapshot(root: Path) -> dict:
    """Every file under root with its bytes (to show that nothing changed)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


class Crash(keras.callbacks.Callback):
    """Simulates Ctrl-C after batch `batch` of epoch `epoch` (0-based)."""

    def __init__(self, epoch, batch=0, exc=KeyboardInterrupt):
        super().__init__()
        self.epoch, self.batch, self.exc, self.current = epoch, batch, exc, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == self.batch:
            raise self.exc("killed")


class Poison(keras.callbacks.Callback):
    """Sets the first trainable kernel to ``value`` after the last step of epoch ``epoch`` (0-based).

    That epoch's training loss was computed before, so it is finite on every CPU: only the checks of
    the weights (NaN) or of the validation embeddings (a finite value so large that they overflow)
    can see the damage, whatever a CPU's kernels do with NaN.
    """

    def __init__(self, epoch, value=np.nan):
        super().__init__()
        self.epoch, self.value, self.current = epoch, value, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == self.params["steps"] - 1:
            w = next(v for v in self.model.trainable_weights if v.path.endswith("kernel"))
            w.assign(np.full(w.shape, self.value, dtype="float32"))


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """A data set, a config file and a finished 2-epoch run of them (shared: tests must not change them)."""
    tmp = tmp_path_factory.mktemp("fin")
    ds, cfg = _toy(tmp / "ds"), _cfg(tmp)
    out = tmp / "run"
    assert main([*_args(ds, cfg), "--out", str(out)]) == 0
    return out, ds, cfg


@pytest.fixture
def finished(shared):
    return shared[0]


@pytest.fixture(scope="module")
def _interrupted(shared, tmp_path_factory):
    """The same training, interrupted (Ctrl-C) in epoch 2: its checkpoint holds epoch 1 (shared: copy it)."""
    _, ds, cfg = shared
    run = tmp_path_factory.mktemp("int") / "run"
    with pytest.raises(KeyboardInterrupt):
        main([*_args(ds, cfg), "--out", str(run)], callbacks=[Crash(1)])
    return run


@pytest.fixture
def interrupted(_interrupted, tmp_path):
    run = tmp_path / "interrupted"
    shutil.copytree(_interrupted, run)
    return run


# ---------------------------------------------------------------- 1. resume after the data changed


def test_resume_refuses_a_dataset_that_changed(tmp_path, capsys):
    ds = _toy(tmp_path / "X")
    cfg = _cfg(tmp_path)
    run = tmp_path / "R"
    with pytest.raises(KeyboardInterrupt):
        main([*_args(ds, cfg, "--out", str(run))], callbacks=[Crash(1)])
    old = load_feature_set(ds).manifest_sha256
    before = _snapshot(run)
    shutil.rmtree(ds)
    _toy(ds, seed=5)  # regenerated with another seed, same path
    new = load_feature_set(ds).manifest_sha256
    assert old != new
    line = _one_error(capsys, run_cli(main, ["--resume", "--out", str(run), "--quiet"]), old, new)
    assert "changed" in line
    assert _snapshot(run) == before  # config.json keeps the old sha256, nothing else touched


# ---------------------------------------------------------------- 2. resume ignores other flags


def test_resume_refuses_config_flags_and_changes_nothing(finished, capsys):
    before = _snapshot(finished)
    code = run_cli(main, ["--resume", "--out", str(finished), "--epochs", "6", "--lr", "0.5", "--space", "rvs"])
    _one_error(capsys, code, "--epochs", "--lr", "--space", "--resume")
    code = run_cli(main, ["--resume", "--out", str(finished), "--no-jit", "--no-attention"])
    _one_error(capsys, code, "--jit/--no-jit", "--no-attention")
    assert _snapshot(finished) == before


def test_resume_of_a_finished_run_reproduces_its_results(finished, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    assert main(["--resume", "--out", str(copy), "--quiet"]) == 0
    assert json.loads((copy / "metrics.json").read_text()) == json.loads((finished / "metrics.json").read_text())


# ---------------------------------------------------------------- 3. lock (in-process; the 3-process race is below)


def test_a_locked_run_directory_is_refused_naming_the_holder(tmp_path, capsys):
    from cvs_tf.training.lock import RunDirLock

    ds = _toy(tmp_path / "ds")
    out = tmp_path / "run"
    out.mkdir()
    with RunDirLock(out):
        code = run_cli(main, [*_args(ds, _cfg(tmp_path)), "--out", str(out)])
        _one_error(capsys, code, f"pid {os.getpid()}", "in use")
        assert [p.name for p in out.iterdir()] == [".lock"]
        code = run_cli(main, ["--resume", "--out", str(out), "--quiet"])
        assert code == 2
        capsys.readouterr()
    assert main([*_args(ds, _cfg(tmp_path)), "--out", str(out)]) == 0  # released: the same --out now trains


# ---------------------------------------------------------------- 4. dead run directories


@pytest.mark.parametrize("argv,needle", [
    (["--modalities", "image", "smell"], "unknown modality smell"),
    (["--space", "mcvs", "--stages", "image,text", "smell"], "unknown modality smell"),
    (["--space", "cvs", "--modalities", "image"], "at least 2 modalities"),
])
def test_failed_validation_creates_no_run_directory(tmp_path, capsys, argv, needle):
    ds = _toy(tmp_path / "ds")
    out = tmp_path / "run"
    _one_error(capsys, run_cli(main, [*_args(ds, _cfg(tmp_path)), *argv, "--out", str(out)]), needle)
    assert not out.exists()


def test_memory_check_runs_before_the_directory_exists(tmp_path, capsys, monkeypatch):
    from cvs_tf.config import ConfigError
    from cvs_tf.training import memory

    def refuse(config, fs, plan):
        assert fs.name == "toy" and plan.modalities
        raise ConfigError("train.batch_size 8: needs 9 TiB (test)")

    monkeypatch.setattr(memory, "check_batch_memory", refuse)
    ds = _toy(tmp_path / "ds")
    out = tmp_path / "run"
    _one_error(capsys, run_cli(main, [*_args(ds, _cfg(tmp_path)), "--out", str(out)]), "9 TiB")
    assert not out.exists()


def test_crash_in_the_first_epoch_leaves_nothing_and_the_same_out_trains(tmp_path):
    ds = _toy(tmp_path / "ds")
    cfg = _cfg(tmp_path)
    out = tmp_path / "mine"  # a directory the user made: kept, emptied of what the failed start wrote
    out.mkdir()
    with pytest.raises(RuntimeError):
        main([*_args(ds, cfg), "--out", str(out)], callbacks=[Crash(0, exc=RuntimeError)])
    assert out.is_dir() and [p.name for p in out.iterdir() if p.name != ".lock"] == []
    assert main([*_args(ds, cfg), "--out", str(out)]) == 0


def test_a_directory_left_by_a_killed_start_is_restarted_without_resume(shared, tmp_path):
    """What `kill -9` in the first epoch leaves (config.json only, maybe a half-written checkpoint)."""
    finished, ds, _ = shared
    dead = tmp_path / "dead"
    dead.mkdir()
    shutil.copy(finished / "config.json", dead / "config.json")
    (dead / ".checkpoint.tmp").mkdir()
    (dead / ".checkpoint.tmp" / "weights.npz").write_bytes(b"half")
    assert main([*_args(ds, _cfg(tmp_path)), "--out", str(dead)]) == 0
    assert (dead / "metrics.json").is_file() and not (dead / ".checkpoint.tmp").exists()


def test_directories_with_work_or_foreign_files_are_never_wiped(shared, interrupted, tmp_path, capsys):
    finished, ds, cfg = shared
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text('{"mine": true}')
    (foreign / "notes.txt").write_text("keep me")
    for d in (finished, interrupted, foreign):
        before = _snapshot(d)
        _one_error(capsys, run_cli(main, [*_args(ds, cfg), "--out", str(d)]), "not empty")
        assert _snapshot(d) == before


# ---------------------------------------------------------------- 7b. divergence (issue #20: on any CPU)

HUGE = float(np.finfo(np.float32).max)  # finite, but every embedding it touches overflows


def _assert_kept_epoch_1(run):
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    assert (state["stage"], state["epoch"]) == (0, 1)
    with np.load(run / "checkpoint" / "weights.npz") as z:
        assert all(np.isfinite(z[k]).all() for k in z.files)
    assert not (run / "metrics.json").exists()


@pytest.mark.parametrize("value,needles", [
    (np.nan, ["trainable weight", "holds NaN or Inf"]),  # NaN weights with a finite loss
    (HUGE, ["val embeddings of", "hold NaN or Inf"]),  # finite weights, non-finite embeddings
])
def test_divergence_stops_at_that_epoch_and_keeps_the_last_good_checkpoint(shared, tmp_path, capsys, value, needles):
    ref, ds, cfg = shared  # the uninterrupted run of the same arguments
    run = tmp_path / "run"
    code = run_cli(lambda a: main(a, callbacks=[Poison(1, value)]), [*_args(ds, cfg), "--out", str(run)])
    _one_error(capsys, code, "stage 1 epoch 2", "diverged", *needles, "not checkpointed", "epoch (1)")
    _assert_kept_epoch_1(run)
    assert main(["--resume", "--out", str(run), "--quiet"]) == 0  # the kept checkpoint is resumable
    assert_bitwise_equal_runs(ref, run)


@pytest.mark.parametrize("jit,extra", [("full", ["--no-deterministic"]), ("loss", [])])  # the whole step / the loss in XLA
def test_nan_weights_with_a_finite_loss_are_caught_under_xla(tmp_path, capsys, jit, extra):
    ds = _toy(tmp_path / "ds")
    cfg = tmp_path / "xla.json"
    cfg.write_text(json.dumps({"model": {"dim": 16}, "train": {"jit": jit}}))
    run = tmp_path / "run"
    args = [a for a in _args(ds, cfg, *extra) if a != "--no-jit"]
    code = run_cli(lambda a: main(a, callbacks=[Poison(1)]), [*args, "--out", str(run)])
    _one_error(capsys, code, "stage 1 epoch 2", "trainable weight", "diverged", "epoch (1)")
    _assert_kept_epoch_1(run)


def test_a_huge_learning_rate_fails_in_the_first_epoch_with_one_line(tmp_path, capsys):
    ds = _toy(tmp_path / "ds")
    out = tmp_path / "run"
    code = run_cli(main, [*_args(ds, _cfg(tmp_path)), "--lr", "1e30", "--out", str(out)])
    _one_error(capsys, code, "stage 1 epoch 1", "diverged", "no epoch completed")
    assert not out.exists()


# ---------------------------------------------------------------- 7d. corrupt checkpoint and config.json


@pytest.mark.parametrize("damage,needles", [
    ("truncate_weights", ["checkpoint/weights.npz", "truncated"]),
    ("garbage_state", ["checkpoint/state.json", "corrupt"]),
    ("state_types", ["checkpoint/state.json", "epoch"]),
    ("truncate_optimizer", ["checkpoint/optimizer.npz"]),
])
def test_corrupt_checkpoint_is_one_line_naming_the_file(interrupted, capsys, damage, needles):
    ck = interrupted / "checkpoint"
    if damage == "truncate_weights":
        data = (ck / "weights.npz").read_bytes()
        (ck / "weights.npz").write_bytes(data[: len(data) // 2])
        with pytest.raises(zipfile.BadZipFile):  # what the old code let through as a traceback
            np.load(ck / "weights.npz")
    elif damage == "truncate_optimizer":
        data = (ck / "optimizer.npz").read_bytes()
        (ck / "optimizer.npz").write_bytes(data[:100])
    elif damage == "garbage_state":
        (ck / "state.json").write_text('{"stage": 0, "epo')
    else:
        state = json.loads((ck / "state.json").read_text())
        state["epoch"] = "one"
        (ck / "state.json").write_text(json.dumps(state))
    before = _snapshot(interrupted)
    _one_error(capsys, run_cli(main, ["--resume", "--out", str(interrupted), "--quiet"]), *needles)
    assert _snapshot(interrupted) == before


@pytest.mark.parametrize("edit,needles", [
    (lambda c: c["train"].update(epochs="x"), ["config.json", "epochs"]),
    (lambda c: c["model"].update(dim="abc"), ["config.json", "dim"]),
    (lambda c: c.update(train=[1]), ["config.json", "train"]),
    (lambda c: c["resolved"].update(dataset_manifest_sha256=7), ["config.json", "dataset_manifest_sha256"]),
    (lambda c: c.update(resolved="x"), ["config.json", "resolved"]),
])
def test_evaluate_config_json_of_wrong_types_is_one_line(finished, tmp_path, capsys, edit, needles):
    bad = tmp_path / "bad"
    shutil.copytree(finished, bad)
    config = json.loads((bad / "config.json").read_text())
    edit(config)
    (bad / "config.json").write_text(json.dumps(config))
    _one_error(capsys, run_cli(evaluate, [str(bad)]), *needles)


# ---------------------------------------------------------------- 11. no validation split


def _no_val_set(path, paired=False):
    rng = np.random.default_rng(0)
    data = {}
    for m, d in {"image": 10, "text": 8}.items():
        ytr, yte = np.arange(32) % 4, np.arange(12) % 4
        data[m] = {"train": (rng.normal(size=(32, d)).astype("float32") + ytr[:, None], ytr),
                   "test": (rng.normal(size=(12, d)).astype("float32") + yte[:, None], yte)}
    data = carve_validation(data, 0.0, 0, paired=paired)
    return save_feature_set(path, "noval", data, [f"c{i}" for i in range(4)],
                            pairing="instance" if paired else "class",
                            provenance={"synthetic": True}, validation={"fraction": 0.0, "seed": 0})


@pytest.mark.parametrize("paired", [False, True])
def test_training_without_a_validation_split(tmp_path, capsys, paired):
    ds = _no_val_set(tmp_path / "noval", paired)
    assert load_feature_set(ds).count("image", "val") == 0
    out = tmp_path / "run"
    assert main([*_args(ds, _cfg(tmp_path)), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "val: no validation split" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["val"] is None and metrics["val_all"] is None and metrics["splits"] == ["test"]
    assert 0.0 <= metrics["test"]["overall_mean"] <= 1.0
    assert not list((out / "eval").glob("val-*"))
    history = json.loads((out / "history.json").read_text())["stages"][0]
    assert history["best_epoch"] == 2 and all("val_map" not in e and "val_loss" not in e for e in history["epochs"])
    if not paired:
        assert evaluate([str(out)]) == 0
        capsys.readouterr()
        _one_error(capsys, run_cli(evaluate, [str(out), "--split", "val"]), "no val items", "--split test")


@pytest.mark.parametrize("mode", ["val_map", "val_loss"])
def test_no_validation_split_with_early_stopping_is_refused_up_front(tmp_path, capsys, mode):
    ds = _no_val_set(tmp_path / "noval")
    out = tmp_path / "run"
    code = run_cli(main, [*_args(ds, _cfg(tmp_path)), "--early-stopping", mode, "--out", str(out)])
    _one_error(capsys, code, "no validation items", "--early-stopping none", mode)
    assert not out.exists()


# ---------------------------------------------------------------- 12. relative dataset paths


def test_relative_dataset_path_is_stored_resolved_and_found_again(tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    _toy(work / "data" / "toyset")
    cfg = _cfg(tmp_path)
    monkeypatch.chdir(work)
    assert main(["--dataset", "data/toyset", "--config", str(cfg), *FAST, "--out", "run"]) == 0
    resolved = json.loads((work / "run" / "config.json").read_text())["resolved"]
    assert resolved["dataset_dir"] == str((work / "data" / "toyset").resolve())
    sha = resolved["dataset_manifest_sha256"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert evaluate([str(work / "run")]) == 0  # by the recorded absolute path

    # the set moved: found by name under $CVS_TF_DATA
    store = tmp_path / "store"
    store.mkdir()
    shutil.move(work / "data" / "toyset", store / "toyset")
    monkeypatch.delenv("CVS_TF_DATA", raising=False)
    capsys.readouterr()
    _one_error(capsys, run_cli(evaluate, [str(work / "run")]), "not found", "CVS_TF_DATA")
    monkeypatch.setenv("CVS_TF_DATA", str(store))
    assert evaluate([str(work / "run")]) == 0

    # another set at the recorded path and under the name: one line with both sha256 values
    _toy(work / "data" / "toyset", seed=9)
    shutil.rmtree(store / "toyset")
    other = load_feature_set(work / "data" / "toyset").manifest_sha256
    capsys.readouterr()
    _one_error(capsys, run_cli(evaluate, [str(work / "run")]), sha, other)


# ---------------------------------------------------------------- 16. mAP@all in metrics.json


def test_metrics_json_holds_map_at_all_and_the_printed_summary(finished, tmp_path):
    from cvs_tf.evaluation.table import cross_modal_table

    metrics = json.loads((finished / "metrics.json").read_text())
    assert metrics["k"] == 50 and metrics["test"]["k"] == 50  # the existing keys are unchanged
    assert metrics["test_all"]["k"] == "all" and metrics["val_all"]["k"] == "all"
    model, fs, _ = load_run(finished)
    for split in ("val", "test"):
        df = cross_modal_table(model, split=split, k="all", dataset=fs, modalities=model.modalities)
        assert metrics[f"{split}_all"]["overall_mean"] == pytest.approx(df.attrs["overall_mean"], abs=1e-6)
        assert (finished / "eval" / f"{split}-independent-kall.json").is_file()


# ---------------------------------------------------------------- subprocesses: kill -9 and the 3-way race

_HOLD = """
import os, sys, time
import cvs_tf  # first: it quiets TensorFlow's native logs before TF is imported
import keras
from cvs_tf.utils.cli import run_cli
from cvs_tf.cli.train import main

class Hold(keras.callbacks.Callback):
    # the winner waits (holding the lock) until the test says go: the race is then certain
    def on_train_begin(self, logs=None):
        t = time.time()
        while not os.path.exists(sys.argv[1]) and time.time() - t < 120:
            time.sleep(0.05)

class SleepAfter(keras.callbacks.Callback):
    # sleeps at the start of the epoch after the first one, so that kill -9 comes after a completed epoch
    def on_epoch_begin(self, epoch, logs=None):
        if epoch >= 1 and sys.argv[1] == "sleep":
            time.sleep(300)

cbs = [SleepAfter()] if sys.argv[1] == "sleep" else [Hold()]
sys.exit(run_cli(lambda a: main(a, callbacks=cbs), sys.argv[2:]))
"""


_TF_NOISE = re.compile(r"[IWEF]\d{4} |WARNING: All log messages before absl")  # TF's native lines, not ours


def _spawn(tmp_path, first, argv):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", _HOLD, first, *argv], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stop(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        try:
            p.communicate(timeout=30)
        except (subprocess.TimeoutExpired, ValueError):
            pass


@pytest.mark.slow
def test_three_concurrent_trainings_on_one_out(tmp_path):
    ds = _toy(tmp_path / "ds")
    out = tmp_path / "run"
    go = tmp_path / "go"
    argv = [*_args(ds, _cfg(tmp_path), "--epochs", "1"), "--out", str(out)]
    procs = [_spawn(tmp_path, str(go), argv) for _ in range(3)]
    try:
        deadline = time.time() + 240
        while sum(p.poll() is not None for p in procs) < 2 and time.time() < deadline:
            time.sleep(0.1)
        go.write_text("go")
        results = [(p, *p.communicate(timeout=240)) for p in procs]
    finally:
        _stop(procs)
    winners = [r for r in results if r[0].returncode == 0]
    losers = [r for r in results if r[0].returncode != 0]
    assert len(winners) == 1, [(p.returncode, e[-500:]) for p, _, e in results]
    win, win_out, _ = winners[0]
    for p, _, err in losers:
        lines = [line for line in err.strip().splitlines() if not _TF_NOISE.match(line)]
        assert p.returncode == 2 and len(lines) == 1, err
        assert lines[0].startswith("error:") and f"pid {win.pid}" in lines[0], lines
    metrics = json.loads((out / "metrics.json").read_text())
    from cvs_tf.cli.train import summary_line

    assert summary_line(metrics) in win_out  # what the winner printed is what the run directory holds
    assert f"{metrics['test']['overall_mean']:.3f}" in win_out


@pytest.mark.slow
def test_kill_9_after_the_first_epoch_then_resume_is_bitwise_identical(tmp_path, capsys):
    ds = _toy(tmp_path / "ds", modalities={"image": 8, "text": 6, "audio": 5})
    args = [*_args(ds, _cfg(tmp_path)), "--epochs", "3", "--space", "mcvs"]  # stage 2 adds audio
    ref = tmp_path / "ref"
    assert main([*args, "--out", str(ref)]) == 0
    run = tmp_path / "run"
    p = _spawn(tmp_path, "sleep", [*args, "--out", str(run)])
    try:
        deadline = time.time() + 240
        state = run / "checkpoint" / "state.json"
        while time.time() < deadline and p.poll() is None:
            if state.is_file() and json.loads(state.read_text())["epoch"] >= 1:
                break
            time.sleep(0.1)
        assert p.poll() is None, p.communicate()[1][-2000:]
        time.sleep(0.5)
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
    finally:
        _stop([p])
    assert json.loads(state.read_text())["epoch"] == 1
    changed = tmp_path / "changed"
    shutil.copytree(run, changed)
    assert main(["--resume", "--out", str(run), "--quiet"]) == 0
    assert_bitwise_equal_runs(ref, run)

    old = load_feature_set(ds).manifest_sha256  # case 1 as reported: the data regenerated, then --resume
    shutil.rmtree(ds)
    _toy(ds, seed=3, modalities={"image": 8, "text": 6, "audio": 5})
    before = _snapshot(changed)
    capsys.readouterr()
    _one_error(capsys, run_cli(main, ["--resume", "--out", str(changed)]), old,
               load_feature_set(ds).manifest_sha256)
    assert _snapshot(changed) == before


def test_every_train_option_is_either_a_config_option_or_accepted_by_resume():
    from cvs_tf.cli.train import CONFIG_OPTIONS, build_parser

    dests = {a.dest for a in build_parser()._actions}
    # --extend has its own refusal of --resume (tests/cli/test_train_extend.py)
    assert dests - set(CONFIG_OPTIONS) <= {"help", "out", "resume", "quiet", "verbose", "extend"}, dests
