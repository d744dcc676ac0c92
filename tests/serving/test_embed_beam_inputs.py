"""`python -m cvs_tf.embed_beam` without Beam: input checks (one-line errors before any pipeline) and the merge step.

These run in both lanes; the pipeline itself is tested in test_embed_beam.py (Beam lane).
"""

import importlib.util
import json

import numpy as np
import pytest

from cvs_tf.cli.embed_beam import main as embed_cli
from cvs_tf.cli.search import main as search_cli
from cvs_tf.retrieval import Index
from cvs_tf.serving import Export
from cvs_tf.serving import shards as shard_io
from cvs_tf.utils.cli import run_cli
from tests.serving.beam_gallery import argv_for, make_gallery


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    return make_gallery(tmp_path_factory.mktemp("embed-beam"))


def one_line_error(capsys, argv, *fragments):
    capsys.readouterr()
    assert run_cli(embed_cli, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for f in fragments:
        assert f in err, err
    return err


@pytest.mark.parametrize("case,fragments", [
    ("no-match", ("no feature shard", "nothing-*.npy")),
    ("wrong-width", ("text features have dimension 11; the export expects 12",)),
    ("unknown-modality", ("export has no modality 'video'",)),
    ("export-missing", ("no such export directory",)),
    ("outputs-exist", ("exist already",)),
])
def test_bad_inputs_are_one_line_errors_and_write_nothing(gallery, tmp_path, capsys, case, fragments):
    exp, shards, _ = gallery
    features, modality, out = shards / "*.np?", "text", tmp_path / "out" / "emb"
    if case == "no-match":
        features = tmp_path / "nothing-*.npy"
    elif case == "wrong-width":
        np.save(tmp_path / "narrow.npy", np.zeros((4, 11), np.float32))
        features = tmp_path / "*.npy"
    elif case == "unknown-modality":
        modality = "video"
    elif case == "export-missing":
        exp = tmp_path / "no-export"
    else:
        out.parent.mkdir()
        (tmp_path / "out" / "emb-00000-of-00003.npz").write_bytes(b"earlier")
    one_line_error(capsys, argv_for(exp, features, out, modality), *fragments)
    left = sorted(p.name for p in (tmp_path / "out").iterdir()) if (tmp_path / "out").exists() else []
    assert left == (["emb-00000-of-00003.npz"] if case == "outputs-exist" else [])
    if case == "outputs-exist":
        assert (tmp_path / "out" / "emb-00000-of-00003.npz").read_bytes() == b"earlier"


@pytest.mark.skipif(importlib.util.find_spec("apache_beam") is not None, reason="apache-beam is installed here")
def test_without_beam_the_pipeline_names_its_virtualenv(gallery, tmp_path, capsys):
    exp, shards, _ = gallery
    one_line_error(capsys, argv_for(exp, shards / "*.np?", tmp_path / "emb"), "apache-beam is not installed",
                   "requirements-beam.txt")
    assert list(tmp_path.iterdir()) == []


def write_embedding_shards(exp, rows, prefix, token="t0"):
    """The shards the pipeline writes, embedded in-process with Export.embed (for the merge tests)."""
    export = Export(exp)
    n = len(rows)
    meta = {"format": shard_io.SHARD_FORMAT, "format_version": shard_io.SHARD_FORMAT_VERSION, "modality": "text",
            "num_shards": n, "token": token, "export": export.identity, "export_path": str(export.path.resolve())}
    paths = []
    for i, (x, ids) in enumerate(rows.values()):
        paths.append(shard_io.output_name(str(prefix), i, n))
        shard_io.write_output(paths[-1], export.embed("text", x), np.asarray(ids), dict(meta, shard=i))
    return paths


def test_merge_gives_an_index_that_search_queries(gallery, tmp_path, capsys):
    exp, _, rows = gallery
    write_embedding_shards(exp, rows, tmp_path / "emb")
    assert embed_cli(["merge", "--shards", str(tmp_path / "emb-*"), "--out", str(tmp_path / "ix")]) == 0
    ix = Index.load(tmp_path / "ix", export=Export(exp))
    want_ids = [i for _, ids in rows.values() for i in ids]
    assert ix.count == 15 and ix.ids.tolist() == want_ids and ix.modality == "text"
    x_b, ids_b = rows["b.npy"]
    np.save(tmp_path / "q.npy", x_b[2])
    capsys.readouterr()
    assert search_cli([str(tmp_path / "ix"), "--query-modality", "text", "--query-features", str(tmp_path / "q.npy"),
                       "--k", "3", "--json"]) == 0
    top = json.loads(capsys.readouterr().out)["results"][0]["queries"][0][0]
    assert top["id"] == ids_b[2] and top["score"] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("case,fragment", [
    ("missing", "shard 1 of 3 is missing"),
    ("mixed", "shards of different embed_beam runs"),
    ("none", "no embedding shard"),
    ("export-moved", "pass --export DIR"),
])
def test_merge_refuses_incomplete_or_mixed_sets(gallery, tmp_path, capsys, case, fragment):
    exp, _, rows = gallery
    paths = write_embedding_shards(exp, rows, tmp_path / "emb")
    pattern = str(tmp_path / "emb-*")
    if case == "missing":
        (tmp_path / paths[1].rsplit("/", 1)[1]).unlink()
    elif case == "mixed":
        write_embedding_shards(exp, dict(list(rows.items())[:1]), tmp_path / "emb2", token="t1")
        pattern = str(tmp_path / "emb*")
    elif case == "none":
        pattern = str(tmp_path / "nothing-*")
    else:
        for p in paths:
            meta, emb, ids = shard_io.read_output(p)
            shard_io.write_output(p, emb, ids, dict(meta, export_path=str(tmp_path / "gone")))
    one_line_error(capsys, ["merge", "--shards", pattern, "--out", str(tmp_path / "ix")], fragment)
    assert not (tmp_path / "ix").exists()
