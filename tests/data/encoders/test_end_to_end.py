"""Encoder lane, end to end with the real offline models: extract a CSV manifest and a folder, then train, evaluate, export and search.

The media are generated (tiny PIL pictures, numpy sine-wave WAVs, one-line captions and box
meshes from :mod:`tests.data.media`), not real recordings: the test checks the pipeline, not
the quality of the space.
"""

import json

import numpy as np
import pytest

from cvs_tf.cli import data as data_cli
from cvs_tf.cli import evaluate as evaluate_cli
from cvs_tf.cli import export as export_cli
from cvs_tf.cli import index as index_cli
from cvs_tf.cli import search as search_cli
from cvs_tf.cli import train as train_cli
from cvs_tf.data.store import load_feature_set
from cvs_tf.serving.export import Export
from cvs_tf.utils.cli import run_cli
from tests.data.media import text_of, write_folder, write_manifest
from tests.data.test_extract import _rows_by_id

pytestmark = pytest.mark.encoders
DIMS = {"image": 1280, "text": 384, "audio": 1024, "3d": 105}
TRAIN = ["--epochs", "2", "--batch-size", "8", "--no-jit", "--quiet", "--early-stopping", "none"]


def _extract(spec, out, models):
    argv = ["extract", str(spec), "--out", str(out), "--quiet", *(a for m, n in models.items()
                                                                    for a in ("--encoder", f"{m}={n}"))]
    assert run_cli(data_cli.main, argv) == 0
    return load_feature_set(out)


@pytest.fixture(scope="module")
def lane(tmp_path_factory, offline_models):
    """A 12-item image/text/audio/3D CSV manifest and a 9-item image/text/audio folder, extracted; a run on the first, exported."""
    tmp = tmp_path_factory.mktemp("lane")
    (tmp / "csv").mkdir()
    spec = write_manifest(tmp / "csv", 12, modalities=("image", "text", "audio", "3d"))
    fs = _extract(spec, tmp / "fs", offline_models)
    folder = _extract(write_folder(tmp / "media", 9, modalities=("image", "text", "audio")), tmp / "fs-folder",
                      offline_models)
    cfg = tmp / "small.json"
    cfg.write_text(json.dumps({"model": {"dim": 8}}))
    assert run_cli(train_cli.main, ["--dataset", str(tmp / "fs"), "--config", str(cfg), *TRAIN, "--out", str(tmp / "run")]) == 0
    assert run_cli(export_cli.main, [str(tmp / "run"), "--out", str(tmp / "exp"), "--with-encoders"]) == 0
    return {"tmp": tmp, "fs": fs, "folder": folder, "exp": Export(tmp / "exp"), "models": offline_models}


def test_both_specs_become_sets_of_the_offline_models_features(lane):
    for fs, mods in ((lane["fs"], ["image", "text", "audio", "3d"]), (lane["folder"], ["image", "text", "audio"])):
        assert sorted(fs.modalities) == sorted(mods) and fs.paired
        encoders = fs.manifest["provenance"]["encoders"]
        for m in mods:
            assert fs.dim(m) == DIMS[m] and encoders[m]["encoder"] == lane["models"].get(m, "shape-descriptors")
            assert np.isfinite(np.concatenate([fs.x(m, s) for s in ("train", "test")])).all()
        for m in lane["models"]:
            assert len(encoders[m]["weights_sha256"]) == 64 and not encoders[m]["keras_native"]
    assert "red/item00" in _rows_by_id(lane["folder"], "text")
    # one item, three ways in: the manifest's caption and the folder's .txt give the same MiniLM row
    np.testing.assert_allclose(_rows_by_id(lane["fs"], "text")["item03"], _rows_by_id(lane["folder"], "text")["red/item03"],
                               atol=1e-5)


def test_the_run_evaluates_and_its_export_records_each_offline_encoder(lane):
    assert run_cli(evaluate_cli.main, [str(lane["tmp"] / "run")]) == 0
    entries = lane["exp"].manifest["modalities"]
    for m, name in lane["models"].items():
        assert entries[m]["encoder"]["encoder"] == name and entries[m]["encoder"]["savedmodel"] is None
    assert entries["3d"]["encoder"]["encoder"] == "shape-descriptors"


def test_raw_queries_run_the_offline_encoders_in_front_of_the_space(lane, capsys):
    tmp, fs, ex = lane["tmp"], lane["fs"], lane["exp"]
    ix = tmp / "ix"
    assert run_cli(index_cli.main, ["build", str(tmp / "exp"), "--features", str(tmp / "fs"), "--modality", "image",
                                    "--out", str(ix)]) == 0
    capsys.readouterr()
    gallery = ex.embed("image", fs.x("image", "test"))
    for m, value, item in (("text", text_of(3), "item03"), ("image", str(tmp / "csv" / "image05.png"), "item05"),
                           ("audio", str(tmp / "csv" / "audio07.wav"), "item07"), ("3d", str(tmp / "csv" / "3d01.off"), "item01")):
        assert run_cli(search_cli.main, [str(ix), "--query-modality", m, "--query-raw", value, "--k", "2", "--json"]) == 0
        res = json.loads(capsys.readouterr().out)
        assert res["query"]["raw"] == value and len(res["results"][0]["queries"][0]) == 2
        q = ex.embed(m, _rows_by_id(fs, m)[item][None])   # the same item's extracted features, embedded
        assert res["results"][0]["queries"][0][0]["score"] == pytest.approx(float(np.max(q @ gallery.T)), abs=1e-4)
