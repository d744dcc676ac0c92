"""The baselines command line: prints and writes the tables, publishes only its block of docs/results/baselines.md."""

import json

import pytest

from cvs_tf.utils.cli import run_cli
from experiments import baselines as bl
from tests.helpers import make_toy_featureset


def test_update_results_replaces_only_its_block(tmp_path):
    doc = tmp_path / "results.md"
    doc.write_text("# Results\n\nIntro kept.\n")
    bl.update_results(doc, "tux12", "tux table v1")
    bl.update_results(doc, "digits10", "digits table")
    bl.update_results(doc, "tux12", "tux table v2")
    text = doc.read_text()
    assert text.startswith("# Results\n\nIntro kept.\n")
    assert text.count("<!-- baselines -->") == 1 and text.count("<!-- /baselines -->") == 1
    assert "tux table v2" in text and "tux table v1" not in text and "digits table" in text
    assert text.index("<!-- baselines -->") < text.index("tux table v2") < text.index("<!-- /baselines -->")


def test_cli_prints_and_writes_tables(tmp_path, capsys):
    paired_set = make_toy_featureset(tmp_path / "toy", paired=True, n_train=60, n_test=24,
                                     modalities={"image": 10, "text": 6, "audio": 4})
    doc, out = tmp_path / "results.md", tmp_path / "tables"
    argv = ["--dataset", str(paired_set), "--doc", str(doc), "--out", str(out), "--baselines", "chance,label",
            "--publish"]
    assert run_cli(bl.main, argv) == 0
    printed = capsys.readouterr().out
    assert printed.count("query \\ retrieval") == 2 and "Chance" in printed and "Label-space" in printed
    assert "<!-- baselines:toy -->" in doc.read_text()
    assert (out / "toy" / "label-k50.json").is_file() and (out / "toy" / "chance-k50.csv").is_file()
    assert run_cli(bl.main, ["--dataset", str(paired_set), "--baselines", "svm", "--no-write"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "svm" in err and "\n" not in err
    assert run_cli(bl.main, ["--dataset", str(tmp_path / "nope"), "--no-write"]) == 2


def test_update_results_creates_no_directory_and_leaves_no_temporary(tmp_path):
    with pytest.raises(FileNotFoundError):
        bl.update_results(tmp_path / "docs" / "results.md", "toy", "table")
    assert list(tmp_path.iterdir()) == []
    doc = tmp_path / "results.md"
    bl.update_results(doc, "toy", "table")
    assert [p.name for p in tmp_path.iterdir()] == ["results.md"]


def test_cli_instance_level_and_strongest_baseline(tmp_path, capsys):
    paired_set = make_toy_featureset(tmp_path / "toy", paired=True, n_train=60, n_test=24,
                                     modalities={"image": 10, "text": 6})
    doc, out = tmp_path / "results.md", tmp_path / "tables"
    argv = ["--dataset", str(paired_set), "--doc", str(doc), "--out", str(out), "--baselines", "posterior,cca,chance",
            "--publish"]
    assert run_cli(bl.main, argv) == 0
    printed = capsys.readouterr().out
    assert printed.count("instance level: R@K") == 2 and "image→text" in printed
    assert "strongest baseline, class level (overall mAP@50): " in printed
    assert "strongest baseline, instance level" in printed
    text = doc.read_text()
    assert text.startswith("<!-- baselines -->\n# Baselines\n\n<!-- baselines:toy -->\n## toy: baselines")
    assert "\n### Posterior product" in text and "instance level: R@K" in text and "| **mean** |" in text
    assert "- strongest baseline, class level" in text and "chosen by CV on train: image: C=" in text
    rec = json.loads((out / "toy" / "cca-recall.json").read_text())
    assert set(rec["recall"]["image"]["text"]) == {"1", "5", "10", "median_rank"}
    assert not (out / "toy" / "chance-recall.json").exists()
