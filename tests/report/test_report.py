"""`python -m cvs_tf.report`: one self-contained HTML file per run, on tiny toy runs of the three spaces (synthetic)."""

import json
import re
import shutil

import numpy as np
import pytest

from cvs_tf.report.__main__ import main as report_main
from cvs_tf.utils.cli import run_cli
from tests.helpers import make_toy_featureset, one_error_line, write_small_config
from tests.report.helpers import write_toy_media

pytestmark = pytest.mark.trains

FAST = ["--epochs", "2", "--batch-size", "8", "--steps-per-epoch", "2", "--no-jit", "--quiet"]
SECTIONS = ("summary", "map", "recall", "losses", "per-class", "confusion", "projector", "calibration", "galleries")


class _Runs(dict):
    """Two-epoch runs (D = 8) on a paired 3-modality toy set, trained on first use: ``runs[space]``."""

    def __missing__(self, space):
        from cvs_tf.cli.train import main as train

        tmp = self["tmp"]
        cfg = write_small_config(tmp / "small.json", 8)
        assert train(["--space", space, "--dataset", str(self["ds"]), "--config", str(cfg), *FAST,
                      "--out", str(tmp / space)]) in (0, None)
        self[space] = tmp / space
        return self[space]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    return _Runs(tmp=tmp, ds=make_toy_featureset(tmp / "ds", paired=True, n_train=48, n_test=16))


def _report(capsys, *argv) -> tuple[int, str]:
    code = run_cli(report_main, [str(a) for a in argv])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("space", ["cvs", pytest.param("mcvs", marks=pytest.mark.slow),
                                   pytest.param("rvs", marks=pytest.mark.slow)])
def test_a_report_of_each_space_holds_every_section_offline(runs, tmp_path, capsys, space):
    out = tmp_path / "r.html"
    code, err = _report(capsys, runs[space], "--out", out, "--baselines", "chance")
    assert code == 0, err
    html = out.read_text()
    for anchor in SECTIONS:
        assert f'<section id="{anchor}">' in html, anchor
    assert 'id="synthetic-banner"' in html and "SYNTHETIC STAND-IN" in html
    # self-contained: every src is a data URI; no script, no link to fetch
    assert all(s.startswith("data:") for s in re.findall(r'src="([^"]*)"', html))
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert html.count('<img class="fig"') >= 7
    assert "independent protocol, test split" in html and "val split" in html   # numbers say protocol and split
    metrics = json.loads((runs[space] / "metrics.json").read_text())
    assert f"{metrics['test']['overall_mean']:.3f}" in html
    assert html.count('class="gal"') == 2 * 6   # two queries for each of the 6 ordered pairs


def test_galleries_show_media_marked_right_or_wrong(runs, tmp_path, capsys):
    media = tmp_path / "media"
    write_toy_media(media, [f"test:{r}" for r in range(16)])
    out = tmp_path / "r.html"
    code, err = _report(capsys, runs["cvs"], "--out", out, "--media", media, "--baselines", "none")
    assert code == 0, err
    html = out.read_text()
    gal = html[html.index('<section id="galleries">'):]
    assert gal.count("<img src=\"data:image/png;base64,") >= 12
    assert gal.count("<audio controls") >= 12 and "caption of test:" in gal
    assert gal.count('class="item right"') + gal.count('class="item wrong"') == 12 * 5
    assert "partner" in gal


def test_the_default_output_is_the_runs_own_report_and_is_replaced(runs, capsys):
    run = runs["cvs"]
    for _ in range(2):
        code, err = _report(capsys, run, "--baselines", "none")
        assert code == 0, err
    assert (run / "report.html").read_text().startswith("<!DOCTYPE html>")


def test_missing_tensorboard_events_and_history_are_marked_missing(runs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(runs["cvs"], run)
    shutil.rmtree(run / "tensorboard")
    (run / "history.json").unlink()
    code, err = _report(capsys, run, "--out", tmp_path / "r.html", "--baselines", "none")
    assert code == 0, err
    html = (tmp_path / "r.html").read_text()
    assert "not available: no readable TensorBoard events" in html and "history.json: missing" in html


def test_a_damaged_events_file_keeps_what_was_read(runs, tmp_path):
    from cvs_tf.report.records import tensorboard_scalars

    run = tmp_path / "run"
    shutil.copytree(runs["cvs"], run)
    whole, _ = tensorboard_scalars(run)
    for f in (run / "tensorboard").rglob("events.out.tfevents.*"):
        f.write_bytes(f.read_bytes()[:-7])
    cut, _ = tensorboard_scalars(run)
    assert cut and set(cut) == set(whole)


@pytest.mark.parametrize("damage,needle", [
    ("no-metrics", "metrics.json: missing"),
    ("corrupt-metrics", "metrics.json: corrupt"),
    ("no-config", "config.json: missing"),
    ("no-stages", "no finished stage"),
])
def test_a_half_written_or_damaged_run_is_one_error_line(runs, tmp_path, capsys, damage, needle):
    run = tmp_path / "run"
    shutil.copytree(runs["cvs"], run)
    {"no-metrics": lambda: (run / "metrics.json").unlink(),
     "corrupt-metrics": lambda: (run / "metrics.json").write_text("{"),
     "no-config": lambda: (run / "config.json").unlink(),
     "no-stages": lambda: shutil.rmtree(run / "stages")}[damage]()
    out = tmp_path / "r.html"
    code = run_cli(report_main, [str(run), "--out", str(out), "--baselines", "none"])
    one_error_line(capsys, code, needle)
    assert not out.exists()


def test_bad_inputs_are_one_error_line_and_nothing_is_overwritten(runs, tmp_path, capsys):
    existing = tmp_path / "x.html"
    existing.write_text("mine\n")
    one_error_line(capsys, run_cli(report_main, [str(tmp_path / "nope")]), "no such run directory")
    one_error_line(capsys, run_cli(report_main, [str(runs["cvs"]), "--out", str(existing)]), "--overwrite")
    one_error_line(capsys, run_cli(report_main, [str(runs["cvs"]), "--out", str(existing), "--overwrite",
                                                 "--baselines", "none"]), "not a report written by cvs_tf")
    assert existing.read_text() == "mine\n"
    one_error_line(capsys, run_cli(report_main, [str(runs["cvs"]), "--out", str(tmp_path / "r.txt")]), "--out")
    one_error_line(capsys, run_cli(report_main, [str(runs["cvs"]), "--baselines", "nope"]), "--baselines")
    one_error_line(capsys, run_cli(report_main, [str(runs["cvs"]), "--overwrite"]), "--overwrite")
    bad_index = tmp_path / "media"
    bad_index.mkdir()
    (bad_index / "media.json").write_text("[]")
    one_error_line(capsys, run_cli(report_main, [str(runs["cvs"]), "--media", str(bad_index), "--out",
                                                 str(tmp_path / "m.html")]), "media.json")
    assert not (tmp_path / "m.html").exists()


def test_analysis_marks_right_and_partner_from_labels_and_rows():
    from cvs_tf.report.analysis import SplitSpace, gallery, retrieved_class_confusion

    e = np.eye(3, dtype=np.float32)
    space = SplitSpace("test", {"a": e, "b": e[[0, 2, 1]]}, {"a": np.array([0, 1, 1]), "b": np.array([0, 1, 1])},
                       {"a": ["a0", "a1", "a2"], "b": ["b0", "b1", "b2"]}, ["x", "y"], paired=True)
    entries = gallery(space, queries=3, k=1)
    first = {(e_["pair"], e_["query"]["row"]): e_["results"][0] for e_ in entries}
    assert first[("a", "b"), 0] == {**first[("a", "b"), 0], "row": 0, "right": True, "partner": True}
    assert first[("a", "b"), 1]["row"] == 2 and first[("a", "b"), 1]["right"] and not first[("a", "b"), 1]["partner"]
    conf = retrieved_class_confusion(space, top=1)["a→b"]
    assert np.allclose(conf, [[1, 0], [0, 1]])


def test_baseline_tables_given_by_the_caller_are_not_computed_again(runs, tmp_path, monkeypatch):
    import cvs_tf.evaluation.baselines as baselines
    from cvs_tf.data.store import load_feature_set
    from cvs_tf.report import write_report

    tables, _ = baselines.baseline_tables(load_feature_set(runs["ds"]), ["chance"], k=50)

    def refuse(*a, **k):
        raise AssertionError("baselines computed again")

    monkeypatch.setattr(baselines, "baseline_tables", refuse)
    out = write_report(runs["cvs"], tmp_path / "r.html", tables=tables)
    assert "<th>chance</th>" in out.read_text()


@pytest.mark.slow
def test_an_extended_run_has_its_card_and_a_report_without_a_before_space(runs, tmp_path, capsys):
    from cvs_tf.cli.train import main as train

    base, new = tmp_path / "base", tmp_path / "new"
    assert train(["--space", "mcvs", "--dataset", str(runs["ds"]), "--modalities", "image", "text", *FAST,
                  "--out", str(base)]) in (0, None)
    assert train(["--extend", str(base), "--dataset", str(runs["ds"]), "--modalities", "audio", *FAST,
                  "--out", str(new)]) in (0, None)
    assert (new / "MODEL_CARD.md").is_file() and (new / "calibration.json").is_file()
    code, err = _report(capsys, new, "--out", tmp_path / "r.html", "--baselines", "none")
    assert code == 0, err
    html = (tmp_path / "r.html").read_text()
    assert "an extended run has no &#x27;before&#x27; space" in html and '<section id="galleries">' in html
