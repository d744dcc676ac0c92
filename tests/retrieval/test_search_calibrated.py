"""`--min-precision P` in `python -m cvs_tf.search` and `Searcher.search(min_precision=P)`: only results above the
export's calibrated threshold, each with the precision its score corresponds to (synthetic toy set)."""

import json

import numpy as np
import pytest

from cvs_tf.cli.index import main as index_cli
from cvs_tf.cli.search import main as search_cli
from cvs_tf.data.store import load_feature_set
from cvs_tf.evaluation.calibration import precision_at, threshold_for
from cvs_tf.retrieval import RetrievalError, Searcher
from cvs_tf.serving import Export
from cvs_tf.utils.cli import run_cli
from tests.helpers import make_toy_featureset, one_error_line
from tests.retrieval.exports import make_export


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """A toy set with a validation split, an export of it (calibrated on val) and a text index of its test split."""
    tmp = tmp_path_factory.mktemp("calibrated")
    fs = load_feature_set(make_toy_featureset(tmp / "ds", n_train=120, n_test=24))
    export = make_export(tmp / "exp", fs, 0)
    assert index_cli(["build", str(export), "--features", str(tmp / "ds"), "--modality", "text", "--out",
                      str(tmp / "ix")]) == 0
    return {"tmp": tmp, "fs": fs, "exp": export, "ix": tmp / "ix"}


def test_an_export_records_the_calibration_of_every_pair(calibrated):
    cal = Export(calibrated["exp"]).manifest["calibration"]
    assert cal["split"] == "val" and cal["protocol"] == "independent"
    assert set(cal["pairs"]) == set(calibrated["fs"].modalities)
    assert all(set(per) == set(calibrated["fs"].modalities) for per in cal["pairs"].values())


@pytest.mark.parametrize("p", [0.3, "best"])
def test_searcher_keeps_only_results_above_the_threshold(calibrated, p):
    fs = calibrated["fs"]
    searcher = Searcher(calibrated["exp"], calibrated["ix"])
    curve = searcher.export.manifest["calibration"]["pairs"]["image"]["text"]["curve"]
    p = min(max(curve["precision"]), 0.99) if p == "best" else p   # the highest precision the (untrained) export reaches
    x = fs.x("image", "test")
    (full,) = searcher.search("image", x, k=20)
    (cut,) = searcher.search("image", x, k=20, min_precision=p)
    t = threshold_for(curve, p)
    assert t is not None and cut.threshold == t
    assert any(h.score < t for q in range(len(x)) for h in full.hits(q))   # the cut removes something
    for q in range(len(x)):
        hits, all_hits = cut.hits(q), full.hits(q)
        expected = [h.id for h in all_hits if h.score >= t]
        assert [h.id for h in hits] == expected
        for h in hits:
            assert h.precision == precision_at(curve, h.score) and h.precision >= p
    assert all(h.precision is not None for h in full.hits(0))   # precision shown without a cut too


@pytest.mark.parametrize("bad", [0, 1, -0.1, 1.5, float("nan")])
def test_searcher_refuses_a_precision_outside_the_open_unit_interval(calibrated, bad):
    with pytest.raises(RetrievalError, match="min_precision"):
        Searcher(calibrated["exp"], calibrated["ix"]).search("image", calibrated["fs"].x("image", "test")[:1],
                                                            min_precision=bad)


def test_an_export_without_calibration_is_refused_for_min_precision(calibrated, tmp_path):
    import shutil

    exp = tmp_path / "exp"
    shutil.copytree(calibrated["exp"], exp)
    manifest = json.loads((exp / "export.json").read_text())
    manifest["calibration"] = None
    (exp / "export.json").write_text(json.dumps(manifest))
    from cvs_tf.retrieval import Index

    searcher = Searcher.__new__(Searcher)
    searcher.export, searcher.indexes = Export(exp), [Index.load(calibrated["ix"])]
    with pytest.raises(RetrievalError, match="no score calibration"):
        searcher.search("image", calibrated["fs"].x("image", "test")[:1], min_precision=0.5)
    (plain,) = searcher.search("image", calibrated["fs"].x("image", "test")[:1])
    assert plain.hits(0)[0].precision is None


def test_cli_min_precision_prints_precision_and_the_threshold(calibrated, capsys):
    argv = [str(calibrated["ix"]), "--query-modality", "image", "--query-id", "test:0", "--min-precision", "0.3"]
    assert search_cli(argv) == 0
    out = capsys.readouterr().out
    assert "precision" in out and "min precision 0.3" in out
    assert search_cli(argv + ["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["min_precision"] == 0.3
    hits = data["results"][0]["queries"][0]
    assert all(h["precision"] >= 0.3 for h in hits)
    assert all(h["score"] >= data["results"][0]["min_precision_threshold"] for h in hits)


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.2", "abc", "nan"])
def test_cli_min_precision_outside_the_open_unit_interval_is_one_error_line(calibrated, capsys, value):
    code = run_cli(search_cli, [str(calibrated["ix"]), "--query-modality", "image", "--query-id", "test:0",
                                "--min-precision", value])
    one_error_line(capsys, code, "--min-precision", "(0, 1)")


def test_no_result_reaching_the_precision_is_an_empty_list(calibrated):
    searcher = Searcher(calibrated["exp"], calibrated["ix"])
    (res,) = searcher.search("image", calibrated["fs"].x("image", "test")[:2], k=5, min_precision=0.999999)
    if res.threshold is None:
        assert res.hits(0) == [] and res.hits(1) == []
    else:
        assert all(h.score >= res.threshold for q in (0, 1) for h in res.hits(q))
    assert np.all((res.rows == -1) | (res.scores >= (res.threshold if res.threshold is not None else np.inf)))
