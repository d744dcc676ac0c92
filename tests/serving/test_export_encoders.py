"""Raw media end to end: extract -> train -> evaluate -> export --with-encoders -> index -> search --query-raw; raw SavedModels equal extract-then-embed."""

import json

import numpy as np
import pytest

from cvs_tf.cli import data as data_cli
from cvs_tf.cli import evaluate as evaluate_cli
from cvs_tf.cli import export as export_cli
from cvs_tf.cli import index as index_cli
from cvs_tf.cli import search as search_cli
from cvs_tf.cli import train as train_cli
from cvs_tf.data.encoders.image import load_image
from cvs_tf.data.store import load_feature_set
from cvs_tf.serving.export import Export
from cvs_tf.utils.cli import run_cli
from tests.data.media import CLASSES, TINY_IMAGE, text_of, write_folder
from tests.helpers import make_toy_featureset, write_small_config

pytestmark = pytest.mark.trains

FAST = ["--epochs", "1", "--batch-size", "8", "--steps-per-epoch", "1", "--no-jit", "--quiet", "--early-stopping", "none"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A 12-item image/text/audio folder, its extracted set, a one-epoch run and its export with encoders."""
    tmp = tmp_path_factory.mktemp("raw")
    spec = write_folder(tmp / "media", 12, modalities=("image", "text", "audio"))
    fs = tmp / "fs"
    assert run_cli(data_cli.main, ["extract", str(spec), "--out", str(fs), "--quiet", "--encoder",
                                   f"image={TINY_IMAGE}", "--encoder", "text=hashed@256"]) == 0
    cfg = write_small_config(tmp / "small.json", 8)
    run, exp = tmp / "run", tmp / "exp"
    assert run_cli(train_cli.main, ["--dataset", str(fs), "--config", str(cfg), *FAST, "--out", str(run)]) == 0
    assert run_cli(export_cli.main, [str(run), "--out", str(exp), "--with-encoders"]) == 0
    return {"tmp": tmp, "fs": fs, "run": run, "exp": exp}


def _item(i):
    return f"{CLASSES[i % 3]}/item{i:02d}"


def _file(world, m, i, ext):
    return world["tmp"] / "media" / m / f"{_item(i)}.{ext}"


def _row(fs, m, item):
    for s in ("train", "val", "test"):
        ids = fs.manifest["item_ids"]["id"][s]
        if item in ids:
            return fs.x(m, s)[ids.index(item)]
    raise AssertionError(item)


def test_raw_savedmodels_equal_extract_then_embed(world):
    fs, ex = load_feature_set(world["fs"]), Export(world["exp"])
    entries = ex.manifest["modalities"]
    assert entries["image"]["encoder"]["savedmodel"] == "image.raw" and entries["text"]["encoder"]["savedmodel"] == "text.raw"
    assert entries["audio"]["encoder"]["savedmodel"] is None and entries["audio"]["encoder"]["encoder"] == "mfcc"
    items = [0, 4, 11]
    pixels = np.stack([load_image(_file(world, "image", i, "png")) for i in items]).astype(np.float32)
    raw = ex.raw_artifact("image").serve(pixels).numpy()
    want = ex.embed("image", np.stack([_row(fs, "image", _item(i)) for i in items]))
    np.testing.assert_allclose(raw, want, atol=1e-5)
    import tensorflow as tf

    raw = ex.raw_artifact("text").serve(tf.constant([text_of(i) for i in items])).numpy()
    want = ex.embed("text", np.stack([_row(fs, "text", _item(i)) for i in items]))
    np.testing.assert_allclose(raw, want, atol=1e-5)
    assert np.abs(raw - want).max() <= 1e-5 and raw.shape == (3, 8)


def test_the_set_evaluates_indexes_and_answers_raw_queries(world, capsys):
    assert run_cli(evaluate_cli.main, [str(world["run"])]) == 0
    ix = world["tmp"] / "ix"
    assert run_cli(index_cli.main, ["build", str(world["exp"]), "--features", str(world["fs"]), "--modality", "image",
                                    "--out", str(ix)]) == 0
    capsys.readouterr()
    fs, ex = load_feature_set(world["fs"]), Export(world["exp"])
    for m, value, item in (("text", text_of(3), _item(3)), ("image", str(_file(world, "image", 5, "png")), _item(5)),
                           ("audio", str(_file(world, "audio", 7, "wav")), _item(7))):
        assert run_cli(search_cli.main, [str(ix), "--query-modality", m, "--query-raw", value, "--k", "2", "--json"]) == 0
        res = json.loads(capsys.readouterr().out)
        assert res["query"]["raw"] == value and len(res["results"][0]["queries"][0]) == 2
        top = res["results"][0]["queries"][0][0]["score"]
        q = ex.embed(m, _row(fs, m, item)[None])          # the same item's stored features, embedded
        assert top == pytest.approx(float(np.max(q @ ex.embed("image", fs.x("image", "test")).T)), abs=1e-5)


def test_with_encoders_needs_a_set_made_by_extract(tmp_path, capsys):
    ds = make_toy_featureset(tmp_path / "ds", modalities={"image": 6, "text": 5}, paired=True)
    cfg = write_small_config(tmp_path / "small.json", 8)
    assert run_cli(train_cli.main, ["--dataset", str(ds), "--config", str(cfg), *FAST, "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert run_cli(export_cli.main, [str(tmp_path / "run"), "--out", str(tmp_path / "exp"), "--with-encoders"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "records no encoders" in err and not (tmp_path / "exp").exists()


def test_a_raw_query_against_an_export_without_encoders_is_one_error_line(world, tiny_export, capsys):
    _, exp, ds = tiny_export
    ix = world["tmp"] / "ix-plain"
    assert run_cli(index_cli.main, ["build", str(exp), "--features", str(ds), "--modality", "image", "--out", str(ix)]) == 0
    capsys.readouterr()
    assert run_cli(search_cli.main, [str(ix), "--query-modality", "text", "--query-raw", "hello"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "records no encoder" in err
