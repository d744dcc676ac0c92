"""`python -m cvs_tf.train --extend RUN_DIR --dataset D2 --modalities M`: flags, one-line refusals, and the extended run end to end."""

import json

import pytest

import cvs_tf
from cvs_tf.cli.train import main
from cvs_tf.utils.cli import run_cli
from tests.training.extend_runs import toy_sets, tree_hashes

pytestmark = pytest.mark.trains

FAST = ["--epochs", "1", "--batch-size", "8", "--steps-per-epoch", "2", "--no-jit", "--quiet", "--early-stopping", "none"]


def _refused(capsys, argv, needle, out):
    code = run_cli(main, argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error:") and needle in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("argv,needle", [
    (["--resume"], "--extend starts a new run from a finished one: it cannot --resume"),
    (["--config", "x.json"], "keeps the recipe of the run it extends: remove --config"),
    (["--preset", "thesis"], "remove --preset"),
    (["--space", "mcvs", "--stages", "image,text", "audio"], "remove --space, --stages"),
    (["--dim", "4", "--standardize"], "remove --dim, --standardize"),
    (["--reference", "text"], "remove --reference"),
    (["--modalities", "audio", "video"], "--extend needs --modalities M: the one modality to add"),
    (["--no-dataset"], "--extend needs --dataset D2"),
])
def test_extend_takes_the_training_options_only(tmp_path, capsys, argv, needle):
    out = tmp_path / "new"
    base = ["--extend", str(tmp_path / "src"), "--dataset", "d2", "--modalities", "audio", "--out", str(out)]
    if argv == ["--no-dataset"]:
        base, argv = base[:2] + base[4:], []
    if argv[:1] == ["--modalities"]:
        base = base[:4] + base[6:]
    _refused(capsys, [*base, *argv], needle, out)


def test_a_missing_or_unfinished_source_and_a_resumed_extension_are_refused(tmp_path, capsys):
    out = tmp_path / "new"
    argv = ["--dataset", "d2", "--modalities", "audio", "--out", str(out)]
    _refused(capsys, ["--extend", str(tmp_path / "nowhere"), *argv], "no such run directory", out)
    ext = tmp_path / "ext"
    ext.mkdir()
    (ext / "config.json").write_text(json.dumps({"resolved": {"extended_from": {"run_dir": "/runs/src"}}}))
    before = tree_hashes(ext)
    _refused(capsys, ["--resume", "--out", str(ext)], "an extension of /runs/src keeps no checkpoint", out)
    assert tree_hashes(ext) == before


@pytest.mark.slow
def test_extend_from_the_command_line_then_evaluate_and_export(tmp_path, capsys, monkeypatch):
    sets = toy_sets(tmp_path)
    src = tmp_path / "src"
    assert main(["--space", "mcvs", "--dataset", str(sets["d1"]), "--dim", "8", "--out", str(src), *FAST]) == 0
    before = tree_hashes(src)
    monkeypatch.chdir(tmp_path)  # the default --out: runs/<source>+<modality>-<time>
    capsys.readouterr()
    assert main(["--extend", str(src), "--dataset", str(sets["d2"]), "--modalities", "AUDIO", *FAST[:6]]) == 0
    printed = capsys.readouterr().out
    (new,) = (tmp_path / "runs").iterdir()
    assert new.name.startswith("src+audio-") and tree_hashes(src) == before
    assert "extends" in printed and "linked to text; no block to image" in printed and "unchanged" in printed
    config = json.loads((new / "config.json").read_text())
    assert config["train"]["dataset"] == str(sets["d2"]) and config["resolved"]["extension"]["partners"] == ["text"]
    assert cvs_tf.load_model(new).modalities == ["image", "text", "audio"]
    from cvs_tf.cli.export import main as export

    assert export([str(new), "--out", str(tmp_path / "exported")]) == 0
    assert json.loads((tmp_path / "exported" / "export.json").read_text())["modality_order"] == ["image", "text", "audio"]


@pytest.mark.slow
def test_evaluate_on_an_extension_whose_set_lacks_a_known_modality(tmp_path, capsys):
    sets = toy_sets(tmp_path)
    src, new = tmp_path / "src", tmp_path / "new"
    assert main(["--space", "mcvs", "--dataset", str(sets["d1"]), "--dim", "8", "--out", str(src), *FAST]) == 0
    assert main(["--extend", str(src), "--dataset", str(sets["d2"]), "--modalities", "audio", "--out", str(new),
                 *FAST[:6]]) == 0
    from cvs_tf.cli.evaluate import main as evaluate

    assert evaluate([str(new), "--protocol", "pairwise"]) == 0
    table = json.loads((new / "eval" / "test-pairwise-k50.json").read_text())
    assert table["modalities"] == ["text", "audio"] and table["fallback_cells"] == []


@pytest.mark.slow
def test_a_cross_validated_run_can_be_extended_and_the_new_stage_selects_on_validation(tmp_path, capsys):
    """Was: extended_config copied train.select cvK, which the Trainer refuses without fold epochs."""
    sets = toy_sets(tmp_path)
    src, new = tmp_path / "src", tmp_path / "new"
    assert main(["--space", "mcvs", "--dataset", str(sets["d1"]), "--dim", "8", "--select", "cv2", "--out", str(src),
                 *FAST]) == 0
    assert json.loads((src / "config.json").read_text())["train"]["select"] == "cv2"
    assert main(["--extend", str(src), "--dataset", str(sets["d2"]), "--modalities", "audio", "--out", str(new),
                 *FAST[:6]]) == 0
    assert json.loads((new / "config.json").read_text())["train"]["select"] == "val"
    assert cvs_tf.load_model(new).modalities == ["image", "text", "audio"]


def test_an_extension_on_an_instance_paired_set_records_recall_like_a_trained_run(tmp_path):
    from tests.helpers import make_toy_featureset
    from tests.training.extend_runs import DIMS

    d1, d2 = (make_toy_featureset(tmp_path / n, modalities={m: DIMS[m] for m in mods}, paired=True, seed=i, name=n)
              for i, (n, mods) in enumerate((("d1", ("image", "text")), ("d2", ("text", "audio")))))
    src, new = tmp_path / "src", tmp_path / "new"
    assert main(["--space", "mcvs", "--dataset", str(d1), "--dim", "8", "--out", str(src), *FAST]) == 0
    assert "recall" in json.loads((src / "metrics.json").read_text())
    assert main(["--extend", str(src), "--dataset", str(d2), "--modalities", "audio", "--out", str(new), *FAST[:6]]) == 0
    recall = json.loads((new / "metrics.json").read_text())["recall"]
    assert set(recall) == {"val", "test"}
    assert set(recall["test"]) == {"text", "audio"} and set(recall["test"]["text"]["audio"]) == {"1", "5", "10",
                                                                                             "median_rank"}

