"""Published results are written only on purpose: baselines need --publish, and a --quick result never replaces a full one."""

import json

import pytest

from cvs_tf.utils.cli import run_cli
from experiments import baselines as bl
from experiments.__main__ import main as experiments_main

pytestmark = pytest.mark.toy(paired=True, n_train=40, n_test=16, modalities={"image": 6, "text": 5, "audio": 4})

PUBLISHED = """<!-- baselines -->
# Baselines

<!-- baselines:toy -->
## toy: baselines (real features)
the published full tables
<!-- /baselines:toy -->
<!-- /baselines -->

Back to the summary.
"""


def _repo(tmp_path, monkeypatch):
    """A working directory that looks like the repository: docs/results/baselines.md with published baselines."""
    (tmp_path / "docs" / "results").mkdir(parents=True)
    (tmp_path / "docs" / "results" / "baselines.md").write_text(PUBLISHED)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "docs" / "results" / "baselines.md"


# --------------------------------------------------------------------------- case 13: baselines


def test_baselines_without_publish_leave_the_results_page_alone(toy_path, tmp_path, monkeypatch, capsys):
    doc = _repo(tmp_path, monkeypatch)
    argv = ["--dataset", str(toy_path), "--baselines", "chance", "--modalities", "image,text"]
    assert run_cli(bl.main, argv) == 0
    assert doc.read_text() == PUBLISHED                                   # nothing published by default
    assert "query \\ retrieval" in capsys.readouterr().out                # the table is printed
    assert (tmp_path / "results" / "baselines" / "toy" / "chance-k50.json").is_file()
    assert run_cli(bl.main, [*argv, "--out", str(tmp_path / "mine")]) == 0
    assert (tmp_path / "mine" / "toy" / "chance-k50.md").is_file() and doc.read_text() == PUBLISHED


def test_baselines_elsewhere_create_no_docs_directory(toy_path, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run_cli(bl.main, ["--dataset", str(toy_path), "--baselines", "chance", "--no-write"]) == 0
    capsys.readouterr()
    assert run_cli(bl.main, ["--dataset", str(toy_path), "--baselines", "chance", "--publish"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "docs/results/" in err and "\n" not in err
    assert list(tmp_path.iterdir()) == []                                 # refused before any work
    assert run_cli(bl.main, ["--dataset", str(toy_path), "--baselines", "chance", "--doc", "x.md"]) == 2
    assert "--publish" in capsys.readouterr().err and list(tmp_path.iterdir()) == []


def test_publish_records_the_command_as_run_and_keeps_other_k(toy_path, tmp_path, monkeypatch, capsys):
    doc = _repo(tmp_path, monkeypatch)
    argv = ["--dataset", str(toy_path), "--baselines", "chance", "--modalities", "text,image", "--publish"]
    assert run_cli(bl.main, argv) == 0
    text = doc.read_text()
    assert "the published full tables" not in text and text.endswith("<!-- /baselines -->\n\nBack to the summary.\n")
    command = f"python -m experiments.baselines --dataset {toy_path} --baselines chance --modalities text,image --publish"
    assert f"Command: `{command}`" in text and "_Wall time of this command: " in text
    assert "| query \\ retrieval | image | text | mean |" in text          # canonical order
    assert run_cli(bl.main, [*argv, "--k", "all"]) == 0                   # mAP@all: a block of its own
    text = doc.read_text()
    assert text.count("<!-- baselines:toy -->") == 1 and text.count("<!-- baselines:toy-kall -->") == 1
    assert "mAP@all on the test split" in text and "mAP@50 on the test split" in text
    assert (tmp_path / "results" / "baselines" / "toy" / "chance-kall.json").is_file()


def test_k_all_is_the_mean_average_precision_over_every_item(toy_path):
    from cvs_tf.data.store import load_feature_set
    from cvs_tf.evaluation.metrics import chance_map_at_k

    _, tables, _ = bl.run(str(toy_path), ("chance", "cca"), k="all", log=lambda s: None)
    fs = load_feature_set(toy_path)
    n = fs.count("text", "test")
    assert tables["chance"].attrs["metric"] == "mAP@all" and tables["cca"].attrs["k"] == "all"
    assert tables["chance"].at["image", "text"] == pytest.approx(
        chance_map_at_k(fs.y("image", "test"), fs.y("text", "test"), n))


@pytest.mark.parametrize("k", ["0", "x", "-3"])
def test_bad_k_is_one_error_line(toy_path, k, capsys):
    assert run_cli(bl.main, ["--dataset", str(toy_path), "--baselines", "chance", "--no-write", "--k", k]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --k") and "\n" not in err


# --------------------------------------------------------------------------- case 14: publish


FULL_DOC = "<!-- experiment:table8 -->\n# Table 8 — full\n\n![t](../figures/table8.png)\n<!-- /experiment:table8 -->\n"


def _results(tmp_path, quick: bool, title="Table 8 — new"):
    res = tmp_path / "results"
    res.mkdir(exist_ok=True)
    head = "**Quick run** (`--quick`: scaled data, few epochs): a smoke test, not a result.\n\n" if quick else ""
    (res / "table8.md").write_text(f"## {title}\n\n{head}![table8](table8.png)\n")
    (res / "table8.png").write_bytes(b"\x89PNG new")
    (res / "table8.json").write_text(json.dumps({"format": "cvs_tf.experiment", "quick": quick}))
    return res


def _doc(tmp_path):
    """docs/results/table8.md holding a full result, its figure in docs/figures/."""
    doc = tmp_path / "docs" / "results" / "table8.md"
    doc.parent.mkdir(parents=True)
    (tmp_path / "docs" / "figures").mkdir()
    doc.write_text(FULL_DOC)
    (tmp_path / "docs" / "figures" / "table8.png").write_bytes(b"\x89PNG full")
    return doc


def test_quick_result_never_replaces_a_full_one_without_force(tmp_path, capsys):
    doc, res = _doc(tmp_path), _results(tmp_path, quick=True)
    argv = ["publish", "table8", "--results", str(res), "--pages", str(doc.parent)]
    assert run_cli(experiments_main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "--quick" in err and "--force" in err and "\n" not in err
    assert doc.read_text() == FULL_DOC                                    # nothing changed
    assert (doc.parent.parent / "figures" / "table8.png").read_bytes() == b"\x89PNG full"
    assert run_cli(experiments_main, [*argv, "--force"]) == 0
    assert "<!-- run: quick -->" in doc.read_text()
    assert (doc.parent.parent / "figures" / "table8.png").read_bytes() == b"\x89PNG new"


def test_publish_records_the_run_kind_and_quick_may_replace_quick(tmp_path, capsys):
    doc, res = _doc(tmp_path), _results(tmp_path, quick=False)
    argv = ["publish", "table8", "--results", str(res), "--pages", str(doc.parent)]
    assert run_cli(experiments_main, argv) == 0                          # full replaces full
    assert "<!-- run: full -->" in doc.read_text() and "Table 8 — new" in doc.read_text()
    _results(tmp_path, quick=True)
    assert run_cli(experiments_main, argv) == 2                          # the marker is what is checked now
    doc.write_text(doc.read_text().replace("<!-- run: full -->", "<!-- run: quick -->"))
    assert run_cli(experiments_main, argv) == 0                          # quick replaces quick


def test_several_names_are_all_checked_before_anything_is_written(tmp_path, capsys):
    doc = _doc(tmp_path)
    res = _results(tmp_path, quick=True)
    (res / "table9.md").write_text("## Table 9\n")
    (res / "table9.json").write_text(json.dumps({"quick": False}))
    assert run_cli(experiments_main, ["publish", "table9", "table8", "--results", str(res), "--pages", str(doc.parent)]) == 2
    assert doc.read_text() == FULL_DOC and not (doc.parent / "table9.md").exists()


def test_sections_published_before_the_marker_are_taken_as_full():
    from experiments.__main__ import published_kind

    assert published_kind(FULL_DOC, "table8") == "full"
    assert published_kind(FULL_DOC.replace("# Table 8 — full", "# T\n\n**Quick run** (...)"), "table8") == "quick"
    assert published_kind(FULL_DOC, "table9") is None


def test_publish_elsewhere_creates_no_docs_directory(tmp_path, monkeypatch, capsys):
    res = _results(tmp_path, quick=False)
    monkeypatch.chdir(tmp_path)
    assert run_cli(experiments_main, ["publish", "table8", "--results", str(res)]) == 2
    assert "docs/results/" in capsys.readouterr().err and not (tmp_path / "docs").exists()


def test_corrupt_results_record_is_one_error_line(tmp_path, capsys):
    doc, res = _doc(tmp_path), _results(tmp_path, quick=True)
    (res / "table8.json").write_text("{not json")
    assert run_cli(experiments_main, ["publish", "table8", "--results", str(res), "--pages", str(doc.parent)]) == 2
    err = capsys.readouterr().err.strip()
    assert "table8.json" in err and "\n" not in err and doc.read_text() == FULL_DOC
