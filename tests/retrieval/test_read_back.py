"""Files read back by index and search (export.json, index.json, SavedModels, query and gallery arrays) are checked: one `error:` line, or the right result."""

import json
import shutil

import numpy as np
import pytest

from cvs_tf.cli.index import main as index_cli
from cvs_tf.cli.search import main as search_cli
from cvs_tf.data.store import load_feature_set
from cvs_tf.retrieval import Index
from cvs_tf.serving import Export
from cvs_tf.serving.export import ExportError
from cvs_tf.utils.cli import run_cli
from tests.helpers import make_toy_featureset
from tests.retrieval.exports import make_export


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    """A toy set, exports A and B (different weights) and an exact text index built with A."""
    tmp = tmp_path_factory.mktemp("read-back")
    fs = load_feature_set(make_toy_featureset(tmp / "ds"))
    a, b = make_export(tmp / "exp-a", fs, 0), make_export(tmp / "exp-b", fs, 1)
    assert index_cli(["build", str(a), "--features", str(tmp / "ds"), "--modality", "text", "--out", str(tmp / "ix")]) == 0
    return {"tmp": tmp, "fs": fs, "a": a, "b": b, "ix": tmp / "ix"}


def one_error(capsys, cli, argv, needle):
    code = run_cli(cli, [str(a) for a in argv])
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err and needle in err[0], err[0]
    return err[0]


def copies(space, tmp_path):
    """Copies of export A and of the index, the index pointing at the copied export."""
    exp, ix = tmp_path / "exp", tmp_path / "ix"
    shutil.copytree(space["a"], exp)
    shutil.copytree(space["ix"], ix)
    return exp, ix


def edit_json(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def search_argv(space, ix, exp, *extra):
    return [ix, "--export", exp, "--query-modality", "text", "--query-id", "test:0", "--dataset", space["tmp"] / "ds",
            *extra]


# --------------------------------------------------------------------------- export.json and its SavedModels

EXPORT_CASES = {
    "modalities-a-list": (lambda m: m.update(modalities=["text"]), "export.json: modalities: must be object, got array"),
    "dim-null": (lambda m: m.update(dim=None), "export.json: dim: must be integer, got null"),
    "stage-string": (lambda m: m.update(stage="1"), "export.json: stage: must be integer, got string"),
    "input-dim-string": (lambda m: m["modalities"]["text"].update(input_dim="12"),
                         "export.json: modalities.text.input_dim: must be integer, got string '12'"),
    "entry-a-number": (lambda m: m["modalities"].update(text=3), "export.json: modalities.text: must be object"),
    "sha-missing": (lambda m: m["modalities"]["text"].pop("weights_sha256"),
                    "export.json: modalities.text.weights_sha256: missing field"),
    "savedmodel-up": (lambda m: m["modalities"]["text"].update(savedmodel="../exp-b/text"),
                      "modalities.text.savedmodel: '../exp-b/text' leads outside its folder"),
    "savedmodel-absolute": (lambda m: m["modalities"]["text"].update(savedmodel="/tmp"),
                            "modalities.text.savedmodel: '/tmp' leads outside its folder"),
    "order-mismatch": (lambda m: m.update(modality_order=["text"]), "export.json: modality_order: lists ['text']"),
    "classes-a-string": (lambda m: m["dataset"].update(classes="a,b"), "export.json: dataset.classes: must be array"),
}


@pytest.mark.parametrize("case", list(EXPORT_CASES))
def test_a_wrongly_typed_export_json_is_one_line(space, tmp_path, capsys, case):
    change, needle = EXPORT_CASES[case]
    exp, ix = copies(space, tmp_path)
    edit_json(exp / "export.json", change)
    with pytest.raises(ExportError, match=None) as exc:
        Export(exp)
    assert needle in str(exc.value)
    one_error(capsys, search_cli, search_argv(space, ix, exp), needle)


def test_a_savedmodel_symlinked_out_of_the_export_is_refused(space, tmp_path, capsys):
    exp, ix = copies(space, tmp_path)
    shutil.rmtree(exp / "text")
    (exp / "text").symlink_to(space["b"] / "text", target_is_directory=True)
    one_error(capsys, search_cli, search_argv(space, ix, exp), "leads outside its folder through a symbolic link")


def test_a_swapped_savedmodel_is_refused_by_its_recorded_checksum(space, tmp_path, capsys):
    exp, ix = copies(space, tmp_path)
    shutil.rmtree(exp / "text")
    shutil.copytree(space["b"] / "text", exp / "text")           # another export's SavedModel, export.json unchanged
    with pytest.raises(ExportError, match="weights are not the ones export.json records for 'text'"):
        Export(exp).embed("text", np.zeros((1, 12), np.float32))
    one_error(capsys, search_cli, search_argv(space, ix, exp), "the SavedModel was replaced or changed")
    assert Export(space["a"]).embed("text", np.ones((1, 12), np.float32)).shape == (1, 16)  # the original passes


# --------------------------------------------------------------------------- index.json

INDEX_CASES = {
    "files-a-list": (lambda m: m.update(files=["faiss.index", "ids.npy"]), "index.json: files: must be object, got array"),
    "count-null": (lambda m: m.update(count=None), "index.json: count: must be integer, got null"),
    "params-an-int": (lambda m: m.update(params=5), "index.json: params: must be object or null, got number 5"),
    "ef-search-3e9": (lambda m: m.update(params={"ef_search": 3_000_000_000}),
                      "index.json: params.ef_search: must be in [1, 4096], got 3000000000"),
    "kind-a-number": (lambda m: m.update(kind=1), "index.json: kind: must be string, got number 1"),
    "file-outside": (lambda m: m["files"].update({"../x": {"sha256": "0", "bytes": 1}}),
                     "index.json: files.../x: not a file of an index"),
    "bytes-a-string": (lambda m: m["files"]["ids.npy"].update(bytes="12"),
                       "index.json: files.ids.npy.bytes: must be integer, got string"),
    "classes-numbers": (lambda m: m.update(classes=[0, 1]), "index.json: classes: must be a list of strings, item 0"),
    "export-sha-null": (lambda m: m["export"].update(sha256=None), "index.json: export.sha256: must be string, got null"),
    "export-an-array": (lambda m: m.update(export=[]), "index.json: export: must be object or null, got array"),
}


@pytest.mark.parametrize("case", list(INDEX_CASES))
def test_a_wrongly_typed_index_json_is_one_line(space, tmp_path, capsys, case):
    change, needle = INDEX_CASES[case]
    exp, ix = copies(space, tmp_path)
    edit_json(ix / "index.json", change)
    one_error(capsys, index_cli, ["info", ix], needle)
    one_error(capsys, search_cli, search_argv(space, ix, exp), needle)


# --------------------------------------------------------------------------- numeric bounds of index and search

@pytest.mark.parametrize("flag,value,needle", [
    ("--hnsw-m", "3000000000", "--hnsw-m: must be in [2, 256], got 3000000000"),
    ("--hnsw-m", "100000000", "--hnsw-m: must be in [2, 256], got 100000000"),
    ("--hnsw-m", "1", "--hnsw-m: must be in [2, 256], got 1"),         # M = 1 crashes faiss (segfault)
    ("--ef-search", "3000000000", "--ef-search: must be in [1, 4096], got 3000000000"),
    ("--ef-construction", "99999", "--ef-construction: must be in [1, 4096]"),
    ("--ef-search", "3e9", "--ef-search: not an integer: '3e9'"),
])
def test_hnsw_options_are_bounded(space, tmp_path, capsys, flag, value, needle):
    out = tmp_path / "ix"
    one_error(capsys, index_cli, ["build", space["a"], "--features", space["tmp"] / "ds", "--modality", "text",
                                  "--kind", "hnsw", flag, value, "--out", out], needle)
    assert not out.exists()


@pytest.mark.parametrize("flag,value,needle", [
    ("--ef-search", "3000000000", "--ef-search: must be in [1, 4096], got 3000000000"),
    ("--k", "3000000000", "--k: must be in [1, 100000], got 3000000000"),
    ("--nprobe", "70000", "--nprobe: must be in [1, 65536], got 70000"),
])
def test_search_options_are_bounded(space, capsys, flag, value, needle):
    one_error(capsys, search_cli, search_argv(space, space["ix"], space["a"], flag, value), needle)


# --------------------------------------------------------------------------- query and gallery files

def test_npz_queries_and_galleries_are_read_like_npy(space, tmp_path, capsys):
    x = np.asarray(space["fs"].x("text", "val"))[:3]
    np.save(tmp_path / "q.npy", x)
    np.savez(tmp_path / "one.npz", x)
    np.savez(tmp_path / "named.npz", features=x, ids=np.arange(3))
    outs = []
    for q in ("q.npy", "one.npz", "named.npz"):
        assert run_cli(search_cli, [str(space["ix"]), "--query-modality", "text", "--query-features",
                                    str(tmp_path / q), "--k", "3", "--json"]) == 0
        outs.append(json.loads(capsys.readouterr().out)["results"])
    assert outs[0] == outs[1] == outs[2]
    g = np.asarray(space["fs"].x("text", "test"))
    np.savez(tmp_path / "g.npz", g)
    assert run_cli(index_cli, ["build", str(space["a"]), "--features", str(tmp_path / "g.npz"), "--modality",
                               "text", "--out", str(tmp_path / "gix")]) == 0
    assert Index.load(tmp_path / "gix").count == len(g)


@pytest.mark.parametrize("make,needle", [
    (lambda p: np.save(p / "q.npy", np.zeros((0, 12), np.float32)), "query features have no rows (shape (0, 12))"),
    (lambda p: np.savez(p / "q.npz", a=np.zeros((2, 12)), b=np.zeros(2)), ".npz holds 2 arrays (a, b); keep one, or name"),
    (lambda p: np.savez(p / "q.npz"), ".npz holds no array"),
    (lambda p: (p / "q.npy").write_text("0.1 0.2\n"), "not a .npy or .npz file of numbers"),
    (lambda p: np.save(p / "q.npy", np.array([["a"] * 12])), "query features must be numbers, got dtype <U1"),
    (lambda p: np.save(p / "q.npy", np.zeros((2, 3, 12))), "query features must be (d,) or (N, d), got shape (2, 3, 12)"),
])
def test_bad_query_files_are_one_line(space, tmp_path, capsys, make, needle):
    make(tmp_path)
    q = next(tmp_path.glob("q.np*"))
    one_error(capsys, search_cli, [space["ix"], "--query-modality", "text", "--query-features", q], needle)


def test_npz_gallery_with_several_unnamed_arrays_is_one_line(space, tmp_path, capsys):
    np.savez(tmp_path / "g.npz", np.zeros((4, 12)), np.zeros(4))
    one_error(capsys, index_cli, ["build", space["a"], "--features", tmp_path / "g.npz", "--modality", "text",
                                  "--out", tmp_path / "ix"], "g.npz: .npz holds 2 arrays")
    assert not (tmp_path / "ix").exists()


# --------------------------------------------------------------------------- labels

def test_n_by_1_gallery_labels_give_the_right_class_names(space, tmp_path, capsys):
    fs = space["fs"]
    g, y = np.asarray(fs.x("audio", "train")), np.asarray(fs.y("audio", "train"))
    np.save(tmp_path / "g.npy", g)
    np.save(tmp_path / "y.npy", y[:, None])                           # a column of class ids
    assert run_cli(index_cli, ["build", str(space["a"]), "--features", str(tmp_path / "g.npy"), "--modality", "audio",
                               "--labels", str(tmp_path / "y.npy"), "--out", str(tmp_path / "ix")]) == 0
    capsys.readouterr()
    np.save(tmp_path / "q.npy", g[:4])
    assert run_cli(search_cli, [str(tmp_path / "ix"), "--query-modality", "audio", "--query-features",
                                str(tmp_path / "q.npy"), "--k", "5", "--json"]) == 0
    for hits in json.loads(capsys.readouterr().out)["results"][0]["queries"]:
        for h in hits:
            assert h["label"] == int(y[h["row"]]) and h["class"] == fs.classes[int(y[h["row"]])]
    assert Index.load(tmp_path / "ix").labels.shape == (len(g),)


def test_multi_hot_gallery_labels_must_be_0_1(space, tmp_path, capsys):
    g = np.asarray(space["fs"].x("audio", "train"))
    hot = np.eye(4, dtype=np.int64)[np.arange(len(g)) % 4]
    hot[3, 1] = 2
    np.save(tmp_path / "g.npy", g)
    np.save(tmp_path / "y.npy", hot)
    one_error(capsys, index_cli, ["build", space["a"], "--features", tmp_path / "g.npy", "--modality", "audio",
                                  "--labels", tmp_path / "y.npy", "--out", tmp_path / "ix"],
              "y.npy: labels out of range: multi-hot labels must be 0/1, found 2")
    assert not (tmp_path / "ix").exists()
