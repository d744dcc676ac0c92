"""`python -m cvs_tf.index build` and `python -m cvs_tf.search`, and the Searcher API, over a small exported space."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cvs_tf.cli.index import main as index_cli
from cvs_tf.cli.search import main as search_cli
from cvs_tf.data.store import load_feature_set
from cvs_tf.retrieval import Index, RetrievalError, Searcher
from cvs_tf.serving import Export
from cvs_tf.utils.cli import run_cli
from tests.helpers import make_toy_featureset
from tests.retrieval.exports import make_export

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    """A toy feature set, two exports of it (A and B, different weights) and indexes built with A."""
    tmp = tmp_path_factory.mktemp("search")
    fs = load_feature_set(make_toy_featureset(tmp / "ds"))
    exp_a, exp_b = make_export(tmp / "exp-a", fs, 0), make_export(tmp / "exp-b", fs, 1)
    built = {}
    for m, kind, split in (("text", "exact", "test"), ("audio", "hnsw", "test"), ("image", "ivf", "train")):
        out = tmp / f"ix-{m}"
        assert index_cli(["build", str(exp_a), "--features", str(tmp / "ds"), "--modality", m, "--kind", kind,
                          "--split", split, "--out", str(out)]) == 0
        built[m] = out
    out_b = tmp / "ix-text-b"
    assert index_cli(["build", str(exp_b), "--features", str(tmp / "ds"), "--modality", "text", "--out", str(out_b)]) == 0
    return {"tmp": tmp, "fs": fs, "a": exp_a, "b": exp_b, "ix": built, "ix_b": out_b}


def brute(exp, fs, q_mod, q_rows, g_mod, split="test"):
    """Scores (Q, N) of query rows against a whole split, through the export, in float64."""
    q = exp.embed(q_mod, np.asarray(fs.x(q_mod, "test"))[q_rows]).astype(np.float64)
    g = exp.embed(g_mod, fs.x(g_mod, split)).astype(np.float64)
    return q @ g.T


def test_index_built_from_a_feature_set_records_rows_labels_and_export(space):
    ix = Index.load(space["ix"]["text"], export=Export(space["a"]))
    fs = space["fs"]
    assert ix.count == fs.count("text", "test") and ix.modality == "text" and ix.kind == "exact"
    assert list(ix.ids[:2]) == ["test:0", "test:1"]
    np.testing.assert_array_equal(ix.labels, fs.y("text", "test"))
    assert ix.classes == fs.classes
    assert ix.source["type"] == "featureset" and ix.source["manifest_sha256"] == fs.manifest_sha256
    assert ix.export["sha256"] == Export(space["a"]).sha256


def test_searcher_api_equals_brute_force_through_the_export(space):
    fs, exp = space["fs"], Export(space["a"])
    searcher = Searcher(space["a"], [space["ix"]["text"], space["ix"]["audio"]])
    res = searcher.search("image", np.asarray(fs.x("image", "test"))[:4], k=5)
    assert [r.modality for r in res] == ["text", "audio"]
    for r, m in zip(res, ["text", "audio"]):
        s = brute(exp, fs, "image", slice(0, 4), m)
        want = -np.sort(-s, axis=1)[:, :5]
        np.testing.assert_allclose(r.scores, want, atol=1e-5)
        for q in range(4):
            hits = r.hits(q)
            assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
            assert all(h.class_name == fs.classes[int(fs.y(m, "test")[h.row])] for h in hits)
            assert all(abs(h.score - s[q, h.row]) < 1e-5 for h in hits)


def test_search_json_for_a_query_id_ranks_like_numpy(space, capsys):
    fs, exp = space["fs"], Export(space["a"])
    argv = [str(space["ix"]["text"]), str(space["ix"]["image"]), "--query-modality", "audio",
            "--query-id", "test:2", "--k", "4", "--json"]
    assert search_cli(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["query"]["id"] == "test:2" and out["query"]["class"] == fs.classes[int(fs.y("audio", "test")[2])]
    assert [r["modality"] for r in out["results"]] == ["text", "image"]
    text = out["results"][0]["queries"][0]
    s = brute(exp, fs, "audio", [2], "text")[0]
    np.testing.assert_allclose([h["score"] for h in text], -np.sort(-s)[:4], atol=1e-5)
    assert [h["id"] for h in text] == [f"test:{r}" for r in np.argsort(-s, kind="stable")[:4]]
    assert {"rank", "id", "row", "score", "modality", "label", "class"} <= set(text[0])
    image = out["results"][1]
    assert image["kind"] == "ivf" and all(h["id"].startswith("train:") for h in image["queries"][0])


def test_search_table_prints_ids_classes_scores_and_modality_per_index(space, capsys, tmp_path):
    fs = space["fs"]
    q = np.asarray(fs.x("text", "val"))[:2]
    np.save(tmp_path / "q.npy", q)
    argv = [str(p) for p in space["ix"].values()] + ["--query-modality", "text", "--query-features",
                                                    str(tmp_path / "q.npy"), "--k", "3"]
    assert search_cli(argv) == 0
    out = capsys.readouterr().out
    assert out.count("query: text q.npy row") == 2
    for m in ("text", "audio", "image"):
        assert out.count(f"{m} items") == 2
    assert "rank  modality  id" in out and "class0" in out and "test:" in out


def test_npy_gallery_with_ids_and_labels(space, tmp_path, capsys):
    fs = space["fs"]
    x = np.asarray(fs.x("audio", "train"))
    np.save(tmp_path / "g.npy", x)
    np.save(tmp_path / "y.npy", np.asarray(fs.y("audio", "train")))
    (tmp_path / "ids.txt").write_text("".join(f"clip-{i}\n" for i in range(len(x))))
    assert index_cli(["build", str(space["a"]), "--features", str(tmp_path / "g.npy"), "--modality", "audio",
                      "--ids", str(tmp_path / "ids.txt"), "--labels", str(tmp_path / "y.npy"),
                      "--out", str(tmp_path / "ix")]) == 0
    ix = Index.load(tmp_path / "ix")
    assert ix.ids[3] == "clip-3" and ix.class_name(3) == fs.classes[int(fs.y("audio", "train")[3])]
    assert ix.source["type"] == "npy" and ix.source["file"] == "g.npy"
    capsys.readouterr()
    np.save(tmp_path / "q.npy", x[5])
    assert search_cli([str(tmp_path / "ix"), "--query-modality", "audio", "--query-features",
                       str(tmp_path / "q.npy"), "--k", "1", "--json"]) == 0
    hit = json.loads(capsys.readouterr().out)["results"][0]["queries"][0][0]
    assert hit["id"] == "clip-5" and hit["score"] == pytest.approx(1.0, abs=1e-5)   # itself


def test_mismatched_index_is_refused_by_the_searcher(space):
    with pytest.raises(RetrievalError, match="built with another export"):
        Searcher(space["a"], [space["ix"]["text"], space["ix_b"]])


@pytest.mark.parametrize("argv,needle", [
    # search
    (["{ix_b}", "--export", "{a}", "--query-modality", "text", "--query-id", "test:0"], "built with another export"),
    (["{ix}", "{ix_b}", "--query-modality", "text", "--query-id", "test:0"], "built with another export"),
    (["{ix}", "--query-modality", "text", "--query-features", "{q5}"], "dimension 5; the export expects 12"),
    (["{ix}", "--query-modality", "text", "--query-id", "test:0", "--export", "{nope}"], "no such export directory"),
    (["{ix}", "--query-modality", "video", "--query-id", "test:0"], "no modality 'video'"),
    (["{ix}", "--query-modality", "text", "--query-id", "test:999"], "row out of range"),
    (["{ix}", "--query-modality", "text", "--query-id", "test-3"], "--query-id must be SPLIT:ROW"),
    (["{ix}", "--query-modality", "text", "--query-features", "{nope}"], "no such query file"),
    (["{nope}", "--query-modality", "text", "--query-id", "test:0"], "no such index directory"),
    (["{ix}", "--query-modality", "text", "--query-id", "test:0", "--k", "0"], "--k: must be in [1, 100000], got 0"),
    (["{ix}", "--query-modality", "text", "--query-id", "test:0", "--nprobe", "2"], "nprobe applies"),
])
def test_search_errors_are_one_line_exit_2(space, tmp_path, capsys, argv, needle):
    np.save(tmp_path / "q5.npy", np.zeros((2, 5), np.float32))
    subst = {"{ix}": str(space["ix"]["text"]), "{ix_b}": str(space["ix_b"]), "{a}": str(space["a"]),
             "{q5}": str(tmp_path / "q5.npy"), "{nope}": str(tmp_path / "nope")}
    assert run_cli(search_cli, [subst.get(a, a) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and needle in err[0], err


@pytest.mark.parametrize("argv,needle", [
    (["build", "{nope}", "--features", "{ds}", "--modality", "text", "--out", "{new}"], "no such export directory"),
    (["build", "{a}", "--features", "{ds}", "--modality", "video", "--out", "{new}"], "no modality 'video'"),
    (["build", "{a}", "--features", "{q5}", "--modality", "text", "--out", "{new}"], "dimension 5; the export expects 12"),
    (["build", "{a}", "--features", "{ds}", "--modality", "text", "--out", "{full}"], "exists and is not empty"),
    (["build", "{a}", "--features", "{ds}", "--modality", "text", "--out", "{new}", "--nlist", "4"], "apply to --kind ivf"),
    (["build", "{a}", "--features", "{ds}", "--modality", "text", "--out", "{new}", "--kind", "ivf", "--nlist", "999"],
     "nlist must be in"),
    (["build", "{a}", "--features", "{nope}", "--modality", "text", "--out", "{new}"], "no such dataset directory"),
    (["build", "{a}", "--features", "{q5}", "--modality", "text", "--out", "{new}", "--ids", "{nope}"], "no such ids file"),
    (["info", "{nope}"], "no such index directory"),
])
def test_index_build_errors_are_one_line_exit_2_and_write_nothing(space, tmp_path, capsys, argv, needle):
    np.save(tmp_path / "q5.npy", np.zeros((2, 5), np.float32))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep")
    subst = {"{a}": str(space["a"]), "{ds}": str(space["tmp"] / "ds"), "{q5}": str(tmp_path / "q5.npy"),
             "{nope}": str(tmp_path / "nope"), "{new}": str(tmp_path / "new"), "{full}": str(tmp_path / "full")}
    assert run_cli(index_cli, [subst.get(a, a) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and needle in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full", "q5.npy"]


def test_moved_or_deleted_export_is_one_line_and_exit_2_from_the_command(space, tmp_path):
    """The real entry module, in a subprocess: a missing export gives one `error:` line and exit 2."""
    ix = tmp_path / "ix"
    shutil.copytree(space["ix"]["text"], ix)           # the recorded relative export path no longer resolves
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "cvs_tf.search", str(ix), "--query-modality", "text",
                           "--query-id", "test:0"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1 and err[0].startswith("error:"), proc.stderr
    assert "export of index" in err[0] and "pass --export DIR" in err[0]
    assert proc.stdout == ""


def test_query_id_needs_a_dataset_when_the_indexes_came_from_npy(space, tmp_path, capsys):
    x = np.asarray(space["fs"].x("text", "test"))
    np.save(tmp_path / "g.npy", x)
    assert index_cli(["build", str(space["a"]), "--features", str(tmp_path / "g.npy"), "--modality", "text",
                      "--out", str(tmp_path / "ix")]) == 0
    assert run_cli(search_cli, [str(tmp_path / "ix"), "--query-modality", "image", "--query-id", "test:1"]) == 2
    assert "needs --dataset D" in capsys.readouterr().err
    assert run_cli(search_cli, [str(tmp_path / "ix"), "--query-modality", "image", "--query-id", "test:1",
                                "--dataset", str(space["tmp"] / "ds")]) == 0
    assert "query: image test:1 (class" in capsys.readouterr().out


def test_build_creates_missing_parent_directories(space, tmp_path):
    out = tmp_path / "indexes" / "deep" / "text"
    assert index_cli(["build", str(space["a"]), "--features", str(space["tmp"] / "ds"), "--modality", "text",
                      "--out", str(out)]) == 0
    assert Index.load(out, export=Export(space["a"])).count == space["fs"].count("text", "test")


def test_index_info(space, capsys):
    assert index_cli(["info", str(space["ix"]["image"])]) == 0
    out = capsys.readouterr().out
    assert "ivf index of" in out and "image items" in out and "nprobe" in out and "untrained-0" in out
