"""`--select cvK` (train, tune) and `--preset auto` (train) from the command line: one-line errors, runs that record their choice."""

import json

import pytest

from cvs_tf.cli import train, tune
from cvs_tf.utils.cli import run_cli
from tests.helpers import make_toy_featureset
from tests.tuning.helpers import TINY_BASE, TINY_SPACE, fake_clock, fake_training, two_modality_set

TINY = ["--epochs", "2", "--dim", "8", "--batch-size", "16", "--no-jit", "--quiet"]
BAD_SELECT = "--select must be val or cvK with K in 2..10 (e.g. cv5), got"


def _error(capsys, main, argv, needle):
    code = run_cli(main, argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error:") and needle in err[0], err


@pytest.mark.parametrize("argv,needle", [
    (["--select", "cv1"], f"{BAD_SELECT} 'cv1'"),
    (["--select", "cv99"], f"{BAD_SELECT} 'cv99'"),
    (["--select", "foo"], f"{BAD_SELECT} 'foo'"),
    (["--select", "cv5"], "fewer than the 5 folds (use fewer folds or --select val)"),
    (["--budget-minutes", "5"], "--budget-minutes is the time of --preset auto's search"),
    (["--preset", "auto", "--budget-minutes", "0"], "--budget-minutes: must be a number > 0, got 0"),
    (["--preset", "auto", "--budget-minutes", "nan"], "--budget-minutes: must be a number > 0, got nan"),
    (["--preset", "auto", "--select", "cv5"], "fewer than the 5 folds"),
    (["--preset", "auto", "--config", "x.json"], "--preset and --config both give a whole recipe"),
])
@pytest.mark.trains
def test_train_bad_selection_values_are_one_line_and_create_nothing(tmp_path, capsys, argv, needle):
    ds = make_toy_featureset(tmp_path / "ds", n_train=12)  # 3 items per class in train+val
    out = tmp_path / "run"
    _error(capsys, train.main, ["--dataset", str(ds), *TINY, *argv, "--out", str(out)], needle)
    assert not out.exists()


@pytest.mark.parametrize("argv,needle", [
    (["--select", "cv1"], f"{BAD_SELECT} 'cv1'"),
    (["--select", "cv5"], "fewer than the 5 folds"),
])
def test_tune_bad_selection_values_are_one_line_and_create_nothing(tmp_path, capsys, argv, needle):
    ds = make_toy_featureset(tmp_path / "ds", n_train=12)
    out = tmp_path / "study"
    _error(capsys, tune.main, ["--dataset", str(ds), "--trials", "1", *argv, "--out", str(out)], needle)
    assert not out.exists()


@pytest.mark.trains
def test_train_select_cv2_records_the_folds_and_resumes(tmp_path, capsys):
    ds = make_toy_featureset(tmp_path / "ds", modalities={"image": 8, "text": 6}, paired=True)
    out = tmp_path / "run"
    assert run_cli(train.main, ["--dataset", str(ds), *TINY, "--select", "cv2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("cv fold ") == 2 and "cv2: chosen " in printed
    assert "val: none left (--select cv2: the final run trained on train+val)" in printed
    sel = json.loads((out / "selection.json").read_text())
    saved = json.loads((out / "config.json").read_text())
    assert saved["resolved"]["selection"]["stage_epochs"] == sel["stage_epochs"] and len(sel["fold_scores"]) == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert run_cli(train.main, ["--resume", "--out", str(out), "--quiet"]) == 0  # a finished run: nothing retrained
    assert json.loads((out / "metrics.json").read_text())["test"] == metrics["test"]


def test_tune_select_cv2_scores_trials_by_cv_and_trains_the_best_on_train_val(tmp_path, capsys):
    ds = two_modality_set(tmp_path)
    base, space = tmp_path / "base.json", tmp_path / "space.json"
    base.write_text(json.dumps(TINY_BASE))
    space.write_text(json.dumps(TINY_SPACE))
    out = tmp_path / "study"
    argv = ["--dataset", str(ds), "--epochs", "1", "--config", str(base), "--search-space", str(space), "--trials", "1"]
    assert run_cli(tune.main, [*argv, "--select", "cv2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "objective: 2-fold cross-validation over train+val" in printed and "-> cv2 mAP@50 " in printed
    trial = json.loads((out / "trials/0000/trial.json").read_text())
    assert trial["selection"]["folds"] == 2 and (out / "trials/0000/fold-2/history.json").is_file()
    assert trial["val_map"] == trial["selection"]["score"]
    final = json.loads((out / "best_run/selection.json").read_text())
    assert final["stage_epochs"] == trial["selection"]["stage_epochs"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["objective"].startswith("2-fold cross-validation") and summary["final"]["test_map"] is not None
    _error(capsys, tune.main, ["--out", str(out), "--resume", "--select", "cv3"], "select 'cv2', given 'cv3'")


@pytest.mark.trains
def test_train_preset_auto_prints_the_baseline_beside_the_choice_and_records_why(tmp_path, capsys, monkeypatch):
    """Stand-in training, 100 s per candidate on a fake clock: a 3.4-minute budget runs 2 candidates."""
    ds = two_modality_set(tmp_path)
    fake_training(monkeypatch)
    fake_clock(monkeypatch, 100.0)
    from cvs_tf.training.trainer import Trainer

    written = {}
    monkeypatch.setattr(Trainer, "__init__", _recording_init(Trainer.__init__, written))
    out = tmp_path / "run"
    assert run_cli(train.main, ["--dataset", str(ds), "--preset", "auto", "--budget-minutes", "3.4", *TINY,
                                "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("\nauto 1 [") + printed.count("\nauto 2 [") == 2 and "\nauto 3 [" not in printed
    line = next(x for x in printed.splitlines() if x.startswith("auto: chosen #"))
    assert "strongest baseline " in line and ": score " in line
    record = written["selection"]["auto"]
    assert record["budget_minutes"] == 3.4 and len(record["candidates"]) == 2
    assert record["chosen"]["label"] == record["candidates"][record["chosen"]["number"]]["label"]
    assert record["baseline"]["strongest"] is not None and "reason" in record["chosen"]
    assert record["fixed"] == {"model.dim": 8, "train.epochs": 2, "train.batch_size": 16}


def _recording_init(init, into):
    def wrapped(self, config, run_dir, **kwargs):
        into["selection"] = kwargs.get("selection")
        init(self, config, run_dir, **kwargs)

    return wrapped
