"""`python -m cvs_tf.evaluate` in-process: tables per protocol, written files, and one-line errors."""

import json

import numpy as np
import pytest

from cvs_tf.cli.evaluate import main as evaluate
from cvs_tf.cli.train import main as train
from cvs_tf.utils.cli import run_cli
from tests.helpers import (
    dir_tree,
    make_toy_featureset,
    one_error_line,
    run_killed,
    write_small_config,
)

pytestmark = pytest.mark.trains


@pytest.fixture(scope="module")
def rvs_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ev")
    ds = make_toy_featureset(tmp / "ds")
    cfg = write_small_config(tmp / "small.json")
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
    assert evaluate([str(rvs_run), "--protocol", "rerank@5", "--out", str(tmp_path / "t")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.json", "t.md"]


def test_out_with_an_extension_writes_that_file_only_and_never_replaces_its_siblings(rvs_run, tmp_path, capsys):
    """Was: ``--out notes.json`` replaced an existing notes.md and wrote notes.csv unasked."""
    (tmp_path / "notes.md").write_text("my notes\n")
    assert evaluate([str(rvs_run), "--out", str(tmp_path / "notes.json")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.json", "notes.md"]
    assert (tmp_path / "notes.md").read_text() == "my notes\n"
    assert json.loads((tmp_path / "notes.json").read_text())["format"] == "cvs_tf.map_table"
    assert capsys.readouterr().out.rstrip().endswith(f"wrote {tmp_path / 'notes.json'}")


def test_existing_out_files_need_overwrite_and_must_be_cvs_tf_tables(rvs_run, tmp_path, capsys):
    (tmp_path / "notes.md").write_text("my notes\n")
    before = (tmp_path / "notes.md").read_bytes()
    for argv, needle in [([], "notes.md: exists (pass --overwrite to replace it)"),
                         (["--overwrite"], "notes.md: not a table file written by cvs_tf")]:
        assert run_cli(evaluate, [str(rvs_run), "--out", str(tmp_path / "notes"), *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and needle in err[0], err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.md"]  # nothing else, no temporary
        assert (tmp_path / "notes.md").read_bytes() == before
    assert evaluate([str(rvs_run), "--out", str(tmp_path / "t")]) == 0
    old = (tmp_path / "t.json").read_bytes()
    assert run_cli(evaluate, [str(rvs_run), "--out", str(tmp_path / "t"), "--split", "val"]) == 2
    assert (tmp_path / "t.json").read_bytes() == old
    assert evaluate([str(rvs_run), "--out", str(tmp_path / "t"), "--split", "val", "--overwrite"]) == 0
    assert json.loads((tmp_path / "t.json").read_text())["split"] == "val"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.md", "t.csv", "t.json", "t.md"]


def test_a_second_evaluate_into_the_same_out_is_refused(rvs_run, tmp_path, capsys):
    from cvs_tf.utils.lock import RunDirLock
    from cvs_tf.utils.output import lock_path

    with RunDirLock(tmp_path / "t.md", path=lock_path(tmp_path / "t.md"), transient=True):  # another writer
        assert run_cli(evaluate, [str(rvs_run), "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err.strip()
    assert "is in use by pid" in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_projector_on_an_extended_run_is_refused_before_anything_is_written(rvs_run, tmp_path, capsys):
    """Was: eval/* written, then the refusal. The run here is a copy whose config.json records extended_from."""
    import shutil

    run = tmp_path / "ext"
    shutil.copytree(rvs_run, run, ignore=shutil.ignore_patterns("eval", "projector"))
    cfg = json.loads((run / "config.json").read_text())
    cfg["resolved"]["extended_from"] = {"run": "source"}
    (run / "config.json").write_text(json.dumps(cfg))
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    assert run_cli(evaluate, [str(run), "--projector"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not apply to an extended run" in err[0], err
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before


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


@pytest.mark.parametrize("point", ["output-built", pytest.param("output-swapped", marks=pytest.mark.slow)])
def test_kill_9_during_evaluate_out_leaves_the_old_table_or_the_new_one(tiny_export, tmp_path, point):
    out = tmp_path / "t.json"
    assert evaluate([str(tiny_export[0]), "--out", str(out), "--split", "val"]) == 0
    run_killed(["cvs_tf.evaluate", tiny_export[0], "--out", out, "--overwrite"], point)
    assert json.loads(out.read_text())["split"] == ("val" if point == "output-built" else "test")
    assert all(p.name == "t.json" or p.name.startswith(".t.json.") for p in tmp_path.iterdir())  # the rest hidden
    assert evaluate([str(tiny_export[0]), "--out", str(out), "--overwrite"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"]


def _copy_run(run, where):
    import shutil

    shutil.copytree(run, where, ignore=shutil.ignore_patterns("eval", "projector"))
    return where


def test_projector_replaces_its_own_folder_only(tiny_export, tmp_path, capsys):
    run = _copy_run(tiny_export[0], tmp_path / "run")
    assert evaluate([str(run), "--projector"]) == 0
    assert evaluate([str(run), "--projector"]) == 0  # its own earlier folder is replaced
    (run / "projector" / "mine.txt").write_text("mine")
    before = dir_tree(run)
    one_error_line(capsys, run_cli(evaluate, [str(run), "--projector", "--split", "val"]),
                   "projector: not a projector written by cvs_tf (it also holds mine.txt")
    assert dir_tree(run) == before  # the val tables were not written either


@pytest.mark.slow
@pytest.mark.parametrize("point", ["output-aside", "output-swapped@4"])  # @4: after the three table files
def test_kill_9_during_projector_leaves_the_old_one_or_the_new_one(tiny_export, tmp_path, point):
    run = _copy_run(tiny_export[0], tmp_path / "run")
    assert evaluate([str(run), "--projector", "--split", "val"]) == 0
    run_killed(["cvs_tf.evaluate", run, "--projector"], point)
    kept = run / (".projector.previous" if point == "output-aside" else "projector")  # the old one, or the new one
    assert json.loads((kept / "projector.json").read_text())["split"] == ("val" if point == "output-aside" else "test")
    assert evaluate([str(run), "--projector"]) == 0  # restores or finishes the cut swap first
    assert json.loads((run / "projector" / "projector.json").read_text())["split"] == "test"
    assert not [p for p in run.iterdir() if p.name.startswith(".projector")]


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


def test_ensemble_scores_the_mean_of_the_members_cosines(tmp_path, capsys, rvs_run):
    from cvs_tf.evaluation.ensemble import ensemble_embeddings
    from cvs_tf.evaluation.metrics import recall_at_k
    from cvs_tf.training.run_dir import load_run

    ds = make_toy_featureset(tmp_path / "ds", paired=True, modalities={"image": 8, "text": 6})
    runs = []
    for seed in (0, 1):
        runs.append(tmp_path / f"run{seed}")
        train(["--dataset", str(ds), "--epochs", "1", "--batch-size", "8", "--steps-per-epoch", "2", "--no-jit",
               "--quiet", "--seed", str(seed), "--config", str(_dim8(tmp_path)), "--out", str(runs[-1])])
    capsys.readouterr()
    assert evaluate([str(runs[0]), "--ensemble", str(runs[1]), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["ensemble"] == [str(runs[0]), str(runs[1])]
    assert (runs[0] / "eval" / "test-ensemble2-k50.json").is_file()
    # the naive reference: scores = mean of the two members' cosine matrices
    models = [load_run(r)[0] for r in runs]
    _, fs, _ = load_run(runs[0])
    e = [{m: np.asarray(mm.embed(m, fs.x(m, "test"))) for m in ("image", "text")} for mm in models]
    scores = (e[0]["image"] @ e[0]["text"].T + e[1]["image"] @ e[1]["text"].T) / 2
    ranks = (scores > np.diag(scores)[:, None]).sum(1) + 1   # the partner's rank (no ties in random floats)
    assert rec["recall"]["test"]["image"]["text"]["1"] == pytest.approx(np.mean(ranks <= 1))
    assert rec["recall"]["test"]["image"]["text"]["10"] == pytest.approx(np.mean(ranks <= 10))
    emb = ensemble_embeddings(models, fs, "test", ["image", "text"])
    np.testing.assert_allclose(emb["image"][0] @ emb["text"][0].T, scores, atol=1e-5)
    assert recall_at_k(emb["image"][0], emb["text"][0], (1,))["1"] == pytest.approx(np.mean(ranks <= 1))
    # an ensemble of a run with itself is the run
    assert evaluate([str(runs[0]), "--ensemble", str(runs[0]), "--json"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert evaluate([str(runs[0]), "--json"]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert same["map"]["overall_mean"] == pytest.approx(alone["map"]["overall_mean"], abs=1e-6)
    # members must share the data and modalities; other protocols are refused
    one_error_line(capsys, run_cli(evaluate, [str(runs[0]), "--ensemble", str(rvs_run)]), "--ensemble", "other data")
    one_error_line(capsys, run_cli(evaluate, [str(runs[0]), "--ensemble", str(runs[1]), "--protocol", "pairwise"]),
                   "independent protocol only")
    one_error_line(capsys, run_cli(evaluate, [str(runs[0]), "--ensemble", str(tmp_path / "nope")]), "no such run directory")


def _dim8(tmp_path):
    cfg = write_small_config(tmp_path / "dim8.json", 8)
    return cfg
