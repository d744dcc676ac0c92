"""The tuning study: selection never reads the test split, and a resumed study continues the same one (numbers, records, total)."""

import json

from cvs_tf.config import RunConfig
from cvs_tf.data.store import FeatureSet, load_feature_set
from cvs_tf.tuning import tune
from tests.tuning.helpers import fake_training, tiny_settings, two_modality_set


def test_tuning_never_reads_the_test_split_before_the_final_best_run(tmp_path, monkeypatch):
    """Real (tiny) trials: no test read until the final run; the trials record validation only; best_config.json trains."""
    from cvs_tf.cli.train import config_from_args, parse_args
    from cvs_tf.tuning import report

    state = {"final": False, "early": [], "late": []}

    class Guarded(FeatureSet):
        def _get(self, modality, split):
            if split == "test":
                state["late" if state["final"] else "early"].append(modality)
            return super()._get(modality, split)

    original = report.final_run

    def final_run(*args, **kwargs):
        state["final"] = True
        return original(*args, **kwargs)

    monkeypatch.setattr(report, "final_run", final_run)
    fs = load_feature_set(two_modality_set(tmp_path))
    out = tmp_path / "study"
    result = tune(tiny_settings(fs.path, trials=1), out, featureset=Guarded(fs.path, fs.manifest, fs.arrays),
                  log=lambda m: None)
    assert state["early"] == [] and sorted(set(state["late"])) == ["image", "text"]
    trial = json.loads((out / "trials/0000/metrics.json").read_text())
    assert trial["splits"] == ["val"] and trial["test"] is None and trial["val"]["overall_mean"] is not None
    assert not list((out / "trials/0000/eval").glob("test-*"))
    assert result.best["number"] == 0 and result.best["val_map"] == trial["val"]["overall_mean"]
    best = RunConfig.from_file(out / "best_config.json")
    assert best.to_dict() == RunConfig.from_dict(result.best["config"]).to_dict()
    assert config_from_args(parse_args(["--config", str(out / "best_config.json")])).to_dict() == best.to_dict()
    final = json.loads((out / "best_run/metrics.json").read_text())
    assert final["splits"] == ["val", "test"] and final["val"]["overall_mean"] == result.best["val_map"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final"]["test_map"] == final["test"]["overall_mean"]
    assert f"test mAP@50 {final['test']['overall_mean']:.4f}" in (out / "summary.md").read_text()


def _slots(out):
    return {r["slot"]: r["params"] for r in map(json.loads, (out / "trials.jsonl").read_text().splitlines())
            if r["state"] == "COMPLETE"}


def test_resume_continues_the_same_study_after_an_interruption(tmp_path, monkeypatch):
    """1 trial, then resume to 3 with Ctrl-C in the second, then resume: numbers continue, records kept, 3 counted,
    and the same configurations as an uninterrupted study with the same seed."""
    ds = two_modality_set(tmp_path)
    fake_training(monkeypatch)
    tune(tiny_settings(ds, trials=3), tmp_path / "straight", log=lambda m: None)

    out = tmp_path / "study"
    tune(tiny_settings(ds, trials=1), out, log=lambda m: None)
    first = (out / "trials/0000/trial.json").read_bytes()
    _leave_a_running_trial(out)  # what kill -9 during a trial leaves in the journal
    fake_training(monkeypatch, interrupt_at=1)
    try:
        tune(tiny_settings(ds, trials=3), out, resume=True, log=lambda m: None)
        raise AssertionError("the interruption did not propagate")
    except KeyboardInterrupt:
        pass
    fake_training(monkeypatch)
    lines = []
    result = tune(tiny_settings(ds, trials=3), out, resume=True, log=lines.append)
    states = [(r["number"], r["slot"], r["state"]) for r in result.records]
    assert states == [(0, 0, "COMPLETE"), (1, -1, "INTERRUPTED"), (2, 1, "INTERRUPTED"), (3, 1, "COMPLETE"),
                      (4, 2, "COMPLETE")]
    assert (out / "trials/0000/trial.json").read_bytes() == first
    assert len((out / "trials.jsonl").read_text().splitlines()) == 5
    assert _slots(out) == _slots(tmp_path / "straight")
    assert "1/3 trial(s) done" in lines[0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials_requested"] == 3 and [t["number"] for t in summary["trials"][:3]] != [1, 2]


def _leave_a_running_trial(out):
    import optuna

    from cvs_tf.tuning.study import STUDY_NAME, _storage

    optuna.load_study(study_name=STUDY_NAME, storage=_storage(out)).ask()
