"""`python -m cvs_tf.tune`: bad input is one `error:` line (exit 2) that leaves nothing behind; the Tux-12 run end to end (slow)."""

import json
import subprocess
import sys

import pytest

from cvs_tf.cli.tune import main
from cvs_tf.utils.cli import run_cli
from tests.tuning.helpers import TINY_BASE, TINY_SPACE, fake_training, two_modality_set


def _files(tmp_path, ds):
    base, space = tmp_path / "base.json", tmp_path / "space.json"
    base.write_text(json.dumps(TINY_BASE))
    space.write_text(json.dumps(TINY_SPACE))
    return ["--dataset", str(ds), "--epochs", "1", "--config", str(base), "--search-space", str(space)]


def _error(capsys, argv, *needles):
    code = run_cli(main, argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error:"), err
    assert all(n in err[0] for n in needles), err[0]
    return err[0]


@pytest.fixture
def study(tmp_path, monkeypatch, capsys):
    """A finished 2-trial study on the toy set (stand-in training), and the options that made it."""
    ds = two_modality_set(tmp_path)
    fake_training(monkeypatch)
    opts = _files(tmp_path, ds)
    assert run_cli(main, [*opts, "--trials", "2", "--out", str(tmp_path / "study")]) == 0
    out = capsys.readouterr().out
    assert out.count("\ntrial ") + out.startswith("trial ") == 2 and "chosen: trial #" in out
    return tmp_path / "study", opts


@pytest.mark.parametrize("argv,needles", [
    (["--dataset", "no-such-set", "--trials", "2"], ["no-such-set: no such dataset"]),
    (["--trials", "0"], ["--trials: must be in [1, 10000], got 0"]),
    (["--loss-kinds", "semihard_triplet,nope"], ["unknown loss kind(s) nope", "registered:"]),
    (["--search-space", "missing.json"], ["--search-space: missing.json: no such search space file"]),
    (["--resume"], ["no study to resume (missing study.journal)"]),
])
def test_bad_input_is_one_line_and_creates_nothing(tmp_path, capsys, argv, needles):
    ds = two_modality_set(tmp_path)
    out = tmp_path / "study"
    _error(capsys, ["--dataset", str(ds), *argv, "--out", str(out)], *needles)
    assert not out.exists()


def test_a_used_directory_or_other_settings_on_resume_are_refused_unchanged(study, tmp_path, capsys):
    out, opts = study
    before = sorted((p.relative_to(out), p.stat().st_mtime_ns) for p in out.rglob("*"))
    _error(capsys, [*opts, "--trials", "2", "--out", str(out)], "not empty", "--resume")
    _error(capsys, ["--out", str(out), "--resume", "--space", "rvs"], "other settings", "space 'cvs', given 'rvs'")
    _error(capsys, ["--out", str(out), "--resume", "--seed", "5"], "seed 0, given 5")
    other = two_modality_set(tmp_path, name="other")
    _error(capsys, ["--out", str(out), "--resume", "--dataset", str(other)], "made for dataset toy")
    assert sorted((p.relative_to(out), p.stat().st_mtime_ns) for p in out.rglob("*")) == before
    from cvs_tf.training.lock import RunDirLock

    with RunDirLock(out):  # a study that another tune is running
        _error(capsys, ["--out", str(out), "--resume", "--trials", "3"], "in use by pid")
    assert len((out / "trials.jsonl").read_text().splitlines()) == 2


def test_resume_runs_only_the_missing_trials(study, capsys):
    out, _ = study
    assert run_cli(main, ["--out", str(out), "--resume", "--trials", "3"]) == 0
    printed = capsys.readouterr().out
    assert "2/3 trial(s) done" in printed and "trial 3/3 (#2)" in printed and "trial 1/3" not in printed
    assert [json.loads(line)["number"] for line in (out / "trials.jsonl").read_text().splitlines()] == [0, 1, 2]


@pytest.mark.slow
def test_tune_tux12_end_to_end(tmp_path):
    """`python -m cvs_tf.tune --dataset tux12 --trials 4` on the shipped set: 4 trials, best config, one test run."""
    out = tmp_path / "tune"
    proc = subprocess.run([sys.executable, "-m", "cvs_tf.tune", "--dataset", "tux12", "--trials", "4", "--epochs", "3",
                           "--out", str(out)], capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert sum(line.startswith("trial ") for line in lines) == 4
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["trials"]) == 4 and summary["final"]["test_map"] is not None
    best = max(t["val_map"] for t in summary["trials"] if t["state"] == "COMPLETE")
    assert summary["best"]["val_map"] == best
    from cvs_tf.cli.train import config_from_args, parse_args
    from cvs_tf.config import RunConfig

    best_cfg = RunConfig.from_file(out / "best_config.json")
    assert config_from_args(parse_args(["--config", str(out / "best_config.json")])).to_dict() == best_cfg.to_dict()
    assert best_cfg.train.dataset == "tux12" and best_cfg.train.epochs == 3
    assert (out / "val_map.png").stat().st_size > 0 and (out / "summary.md").is_file()


def test_a_string_bound_in_the_search_space_file_is_one_line(tmp_path, capsys):
    ds = two_modality_set(tmp_path)
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"dim": {"low": "8", "high": 16}}))
    out = tmp_path / "study"
    _error(capsys, ["--dataset", str(ds), "--search-space", str(space), "--out", str(out)],
           "search space parameter 'dim': low must be a finite number, got string '8'")
    assert not out.exists()


@pytest.mark.parametrize("field,value,needle", [
    ("seed", "0", "cvs_tf.seed: must be integer, got string '0'"),
    ("trials", None, "cvs_tf.trials: must be integer, got null"),
    ("search_space", {"params": 3}, "cvs_tf.search_space: search space: malformed"),
    ("base_config", {"model": {"dim": "x"}}, "cvs_tf.base_config: config.model.dim: expected an integer"),
])
def test_a_study_with_wrongly_typed_settings_is_refused_on_resume(study, capsys, field, value, needle):
    import optuna

    from cvs_tf.tuning.study import META_KEY, STUDY_NAME, _storage

    out, _ = study
    s = optuna.load_study(study_name=STUDY_NAME, storage=_storage(out))
    s.set_user_attr(META_KEY, {**s.user_attrs[META_KEY], field: value})
    _error(capsys, ["--out", str(out), "--resume", "--trials", "3"], "study.journal: " + needle)


@pytest.mark.parametrize("field,value,needle", [
    ("number", "1", "trial.json: number: must be integer, got string '1'"),
    ("val_map", "high", "trial.json: val_map: must be number or null, got string"),
    ("state", "DONE", "trial.json: state: must be one of COMPLETE, FAIL, INTERRUPTED"),
])
def test_a_wrongly_typed_trial_record_is_one_line_on_resume(study, capsys, field, value, needle):
    out, _ = study
    rec_path = out / "trials" / "0001" / "trial.json"
    rec = json.loads(rec_path.read_text())
    rec_path.write_text(json.dumps({**rec, field: value}))
    _error(capsys, ["--out", str(out), "--resume", "--trials", "3"], needle)


def test_json_files_with_a_utf8_bom_are_read(tmp_path):
    from cvs_tf.cli.tune import parse_args, settings_from_args

    base, space = tmp_path / "base.json", tmp_path / "space.json"
    base.write_text("\ufeff" + json.dumps({"model": {"dim": 8}}), encoding="utf-8")
    space.write_text("\ufeff" + json.dumps({"dim": {"choices": [8, 16]}}), encoding="utf-8")
    s = settings_from_args(parse_args(["--config", str(base), "--search-space", str(space), "--out", str(tmp_path / "o")]))
    assert s.base.model.dim == 8
    assert next(p for p in s.search.params if p.name == "dim").choices == (8, 16)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["output-built@2", "output-swapped@24", "output-built@47"])
def test_kill_9_at_several_points_then_resume_finishes_the_study_and_leaves_no_temporary(tmp_path, monkeypatch,
                                                                                         capsys, point):
    """A real 2-trial study killed early (first trial), midway and late (final run); --resume (stand-in training) ends it."""
    from tests.helpers import run_killed

    ds = two_modality_set(tmp_path)
    opts, out = _files(tmp_path, ds), tmp_path / "study"
    run_killed(["cvs_tf.tune", *opts, "--trials", "2", "--out", out], point)
    shown = [p for p in out.rglob("*") if p.is_file() and not any(s.startswith(".") for s in p.relative_to(out).parts)]
    for p in shown:  # every file presented as output is complete
        if p.suffix == ".json":
            json.loads(p.read_text())
        elif p.name == "trials.jsonl":
            [json.loads(line) for line in p.read_text().splitlines()]
    fake_training(monkeypatch)
    assert run_cli(main, [*opts, "--trials", "2", "--out", str(out), "--resume"]) == 0
    assert "chosen: trial #" in capsys.readouterr().out
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name or p.name.endswith(".previous")]
    records = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    assert sum(r["state"] == "COMPLETE" for r in records) == 2
