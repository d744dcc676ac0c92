"""`python -m cvs_tf.evaluate` in-process: tables per protocol, written files, and one-line errors."""

import json

import pytest

from cvs_tf.cli.evaluate import main as evaluate
from cvs_tf.cli.train import main as train
from cvs_tf.utils.cli import run_cli
from tests.conftest import make_toy_featureset


@pytest.fixture(scope="module")
def rvs_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ev")
    ds = make_toy_featureset(tmp / "ds")
    cfg = tmp / "small.json"
    cfg.write_text(json.dumps({"model": {"dim": 16}}))
    out = tmp / "run"
    train(["--space", "rvs", "--reference", "image", "--dataset", str(ds), "--config", str(cfg), "--epochs", "1",
           "--batch-size", "8", "--steps-per-epoch", "2", "--no-jit", "--quiet", "--out", str(out)])
    return out


def test_pairwise_table_names_protocol_and_fallback_cells(rvs_run, capsys):
    assert evaluate([str(rvs_run), "--protocol", "pairwise", "--k", "all", "--split", "val"]) == 0
    printed = capsys.readouterr().out
    assert "pairwise" in printed and "val" in printed
    rec = json.loads((rvs_run / "eval" / "val-pairwise-kall.json").read_text())
    assert rec["protocol"] == "pairwise" and rec["split"] == "val" and rec["k"] == "all"
    # RVS has blocks only to the reference: text<->audio falls back to independent
    assert sorted(map(tuple, rec["fallback_cells"])) == [("audio", "text"), ("text", "audio")]
    assert (rvs_run / "eval" / "val-pairwise-kall.md").is_file()


def test_out_stem_and_rerank(rvs_run, tmp_path):
    assert evaluate([str(rvs_run), "--protocol", "rerank@5", "--out", str(tmp_path / "t.md")]) == 0
    assert {p.suffix for p in tmp_path.iterdir()} == {".md", ".csv", ".json"}


@pytest.mark.parametrize("argv,needle", [
    (["{missing}"], "no such run directory"),
    (["{empty}"], "config.json: missing"),
    (["{run}", "--protocol", "oracle-pairs"], "LEAKS LABELS"),
    (["{run}", "--k", "zero"], "--k must be"),
    (["{run}", "--stage", "7"], "no finished stage 7"),
])
def test_errors_are_one_line_exit_2(rvs_run, tmp_path, capsys, argv, needle):
    (tmp_path / "empty").mkdir()
    subst = {"{missing}": str(tmp_path / "nope"), "{empty}": str(tmp_path / "empty"), "{run}": str(rvs_run)}
    assert run_cli(evaluate, [subst.get(a, a) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and needle in err[0], err


def test_corrupt_model_file_is_reported(rvs_run, tmp_path, capsys):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(rvs_run, bad)
    for p in (bad / "stages").rglob("model.keras"):
        p.write_bytes(b"not a zip")
    assert run_cli(evaluate, [str(bad)]) == 2
    assert "cannot be loaded" in capsys.readouterr().err


def test_json_and_recall_of_an_instance_paired_run(tmp_path, capsys, rvs_run):
    ds = make_toy_featureset(tmp_path / "ds", paired=True, modalities={"image": 8, "text": 6})
    out = tmp_path / "run"
    train(["--dataset", str(ds), "--epochs", "1", "--batch-size", "8", "--steps-per-epoch", "2", "--no-jit",
           "--quiet", "--out", str(out)])
    capsys.readouterr()
    assert evaluate([str(out)]) == 0
    printed = capsys.readouterr().out
    assert "instance level" in printed and "image→text" in printed and "R@10" in printed
    assert evaluate([str(out), "--json", "--split", "val"]) == 0
    captured = capsys.readouterr()
    rec = json.loads(captured.out)
    assert rec["map"]["split"] == "val" and "wrote" in captured.err
    metrics = json.loads((out / "metrics.json").read_text())
    assert rec["recall"] == {"val": metrics["recall"]["val"]}
    assert evaluate([str(rvs_run), "--json"]) == 0                 # class-paired: mAP only
    assert "recall" not in json.loads(capsys.readouterr().out)
