"""``python -m cvs_tf.data import DIR``: a generic layout round-trips into a feature set that trains; corrupt input is one line and leaves nothing."""

import json
from pathlib import Path

import numpy as np
import pytest

from cvs_tf.data.store import SPLITS, load_feature_set
from tests.data.cli_helpers import assert_one_error
from tests.data.cli_helpers import data_cli as cli
from tests.helpers import make_toy_featureset, write_small_config


def assert_nothing_written(tmp_path):
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp")]


def write_layout(root: Path, fs, fmt="npz", *, splits=SPLITS, ids=True, classes=True):
    """Write feature set ``fs`` as a generic layout: one ``fmt`` file per modality and split."""
    root.mkdir(parents=True)
    for m in fs.modalities:
        for s in splits:
            x, y = np.asarray(fs.x(m, s), np.float32), np.asarray(fs.y(m, s))
            item = np.array([f"{s}-{r}" for r in range(len(x))])
            if fmt == "npz":
                np.savez(root / f"{m}.{s}.npz", features=x, labels=y, **({"ids": item} if ids else {}))
            elif fmt == "npy":
                np.save(root / f"{m}.{s}.npy", x)
                np.save(root / f"{m}.{s}.labels.npy", y)
                if ids:
                    (root / f"{m}.{s}.ids.txt").write_text("".join(f"{i}\n" for i in item))
            else:
                import pyarrow as pa
                import pyarrow.parquet as pq

                cols = {"features": pa.array(list(x)), "labels": pa.array(y)}
                pq.write_table(pa.table({**cols, **({"ids": pa.array(item)} if ids else {})}), root / f"{m}.{s}.parquet")
    if classes:
        (root / "classes.txt").write_text("".join(f"{c}\n" for c in fs.classes))
    return root


@pytest.fixture
def paired(tmp_path):
    return load_feature_set(make_toy_featureset(tmp_path / "src-set", paired=True, name="toy"))


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("fmt", ["npz", "npy"])
def test_layout_with_its_own_val_round_trips_exactly(tmp_path, capsys, paired, fmt):
    src = write_layout(tmp_path / "layout", paired, fmt)
    code, out, err = cli(["import", src, "--out", tmp_path / "out", "--name", "mine"], capsys)
    assert (code, err) == (0, ""), err
    assert "pairing     instance-paired" in out and "validation  provided by the source" in out
    fs = load_feature_set(tmp_path / "out")
    assert (fs.name, fs.classes, fs.modalities, fs.paired) == ("mine", paired.classes, paired.modalities, True)
    for m in fs.modalities:
        for s in SPLITS:
            np.testing.assert_array_equal(fs.x(m, s), np.asarray(paired.x(m, s), np.float32))
            np.testing.assert_array_equal(fs.y(m, s), paired.y(m, s))
    assert fs.manifest["item_ids"]["id"]["test"][:2] == ["test-0", "test-1"]
    prov = fs.manifest["provenance"]
    assert prov["converter"] == "cvs_tf.data.importer" and "classes.txt" in prov["source_files"]
    assert all(not Path(n).is_absolute() for n in prov["source_files"])


@pytest.mark.trains
def test_imported_layout_trains(tmp_path, capsys, paired):
    from cvs_tf.cli.train import main as train

    src = write_layout(tmp_path / "layout", paired, "npy", splits=("train", "test"), ids=False, classes=False)
    code, out, err = cli(["import", src, "--out", tmp_path / "out", "--pairing", "instance"], capsys)
    assert (code, err) == (0, ""), err
    fs = load_feature_set(tmp_path / "out")
    assert fs.classes == [f"class{c:02d}" for c in range(4)] and fs.count("image", "val") > 0
    cfg = write_small_config(tmp_path / "small.json")
    assert train(["--dataset", str(tmp_path / "out"), "--config", str(cfg), "--epochs", "1", "--batch-size", "8",
                  "--steps-per-epoch", "2", "--no-jit", "--quiet", "--out", str(tmp_path / "run")]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics and (tmp_path / "run" / "stages").is_dir()


def test_ids_pair_rows_given_in_another_order_and_val_is_carved(tmp_path, capsys, paired):
    src = write_layout(tmp_path / "layout", paired, "npz", splits=("train", "test"))
    z = dict(np.load(src / "text.train.npz"))
    perm = np.random.default_rng(0).permutation(len(z["ids"]))
    np.savez(src / "text.train.npz", **{k: v[perm] for k, v in z.items()})
    code, _, err = cli(["import", src, "--out", tmp_path / "out", "--val-fraction", "0.25", "--seed", "3"], capsys)
    assert (code, err) == (0, ""), err
    fs = load_feature_set(tmp_path / "out")
    ids = fs.manifest["item_ids"]["id"]
    assert fs.count("text", "val") == len(ids["val"]) == 8 and fs.manifest["validation"]["seed"] == 3
    rows = {i: r for r, i in enumerate(z["ids"])}      # the text features of each item, by id
    for s in ("train", "val"):
        want = np.stack([z["features"][rows[i]] for i in ids[s]])
        np.testing.assert_array_equal(fs.x("text", s), want)
        np.testing.assert_array_equal(fs.y("text", s), fs.y("image", s))


def test_without_ids_the_set_is_paired_by_class(tmp_path, capsys):
    fs0 = load_feature_set(make_toy_featureset(tmp_path / "cls"))       # unequal counts per modality
    src = write_layout(tmp_path / "layout", fs0, "npz", splits=("train", "test"), ids=False)
    code, out, err = cli(["import", src, "--out", tmp_path / "out", "--val-fraction", "0"], capsys)
    assert (code, err) == (0, ""), err
    fs = load_feature_set(tmp_path / "out")
    assert not fs.paired and "item_ids" not in fs.manifest and not fs.has_split("val")
    assert "import: paired by class only (no ids)" in out


def test_multi_hot_labels(tmp_path, capsys):
    fs0 = load_feature_set(make_toy_featureset(tmp_path / "multi", label_kind="multi", paired=True))
    src = write_layout(tmp_path / "layout", fs0, "npz", splits=("train", "test"))
    code, _, err = cli(["import", src, "--out", tmp_path / "out"], capsys)
    assert (code, err) == (0, ""), err
    fs = load_feature_set(tmp_path / "out")
    assert fs.label_kind == "multi" and fs.y("image", "test").shape == (12, 4)


def test_parquet_round_trip(tmp_path, capsys, paired):
    pytest.importorskip("pyarrow")
    src = write_layout(tmp_path / "layout", paired, "parquet")
    code, _, err = cli(["import", src, "--out", tmp_path / "out"], capsys)
    assert (code, err) == (0, ""), err
    fs = load_feature_set(tmp_path / "out")
    np.testing.assert_array_equal(fs.x("audio", "val"), np.asarray(paired.x("audio", "val"), np.float32))


def test_parquet_without_pyarrow_is_one_line(tmp_path, capsys, paired, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    src = write_layout(tmp_path / "layout", paired, "npz")
    (src / "image.train.npz").unlink()
    (src / "image.train.parquet").write_bytes(b"PAR1")
    code, _, err = cli(["import", src, "--out", tmp_path / "out"], capsys)
    assert_one_error(code, err, "image.train.parquet: file: reading Parquet needs pyarrow (pip install pyarrow)")
    assert_nothing_written(tmp_path)


# --------------------------------------------------------------------------- corrupt input


def _edit_npz(name, **changes):
    def edit(src):
        z = dict(np.load(src / name))
        for k, v in changes.items():
            if v is None:
                z.pop(k)
            else:
                z[k] = v(z[k]) if callable(v) else v
        np.savez(src / name, **z)
    return edit


def _nan(x):
    x = x.copy()
    x[2, 3] = np.nan
    return x


def _truncate(name, keep=0.6):
    def edit(src):
        data = (src / name).read_bytes()
        (src / name).write_bytes(data[: int(len(data) * keep)])
    return edit


def _labels_with(value, row=1):
    def change(y):
        y = y.astype(np.float64)
        y[row] = value
        return y
    return change


CORRUPT = {
    "missing-file": (lambda src: (src / "audio.test.npz").unlink(), "audio.test.npy: file: file not found"),
    "missing-key": (_edit_npz("image.train.npz", features=None), "image.train.npz: features: missing key (file has: labels, ids)"),
    "missing-labels": (_edit_npz("text.test.npz", labels=None), "text.test.npz: labels: missing"),
    "features-1d": (_edit_npz("image.test.npz", features=lambda x: x[:, 0]), "image.test.npz: features: wrong shape (12,)"),
    "labels-count": (_edit_npz("text.train.npz", labels=lambda y: y[:-1]), "text.train.npz: labels: wrong shape: 35 labels for 36"),
    "dim-mismatch": (_edit_npz("audio.val.npz", features=lambda x: x[:, :-1]), "audio.val.npz: features: wrong shape: feature dim 5, audio train has 6"),
    "nan": (_edit_npz("image.train.npz", features=_nan), "image.train.npz: features: contains NaN or Inf (1 values; first at row 3, column 4)"),
    "beyond-float32": (_edit_npz("text.test.npz", features=lambda x: x.astype(np.float64) * 1e300),
                       "text.test.npz: features: has values beyond float32 range"),
    "text-features": (_edit_npz("text.test.npz", features=lambda x: x.astype(str)), "text.test.npz: features: not a numeric array"),
    "label-beyond-classes": (_edit_npz("image.test.npz", labels=_labels_with(4)),
                             "image.test.npz: labels: labels out of range: found 4, but classes.txt names 4 classes"),
    "negative-label": (_edit_npz("text.val.npz", labels=_labels_with(-1)), "text.val.npz: labels: labels out of range: found -1"),
    "fractional-label": (_edit_npz("text.val.npz", labels=_labels_with(1.5)), "text.val.npz: labels: labels out of range: not integers (found 1.5)"),
    "nan-label": (_edit_npz("audio.test.npz", labels=_labels_with(np.nan)), "audio.test.npz: labels: labels contain NaN or Inf"),
    "truncated-npz": (_truncate("text.train.npz"), "text.train.npz: arrays: cannot read (truncated or corrupt file"),
    "duplicate-id": (_edit_npz("image.val.npz", ids=lambda i: np.array(["val-0"] * len(i))), "image.val.npz: ids: id 'val-0' appears twice"),
    "id-missing": (_edit_npz("audio.test.npz", ids=lambda i: np.array([f"other-{r}" for r in range(len(i))])),
                   "audio.test.npz: ids: id 'test-0' of image.test.npz is missing here"),
    "labels-differ": (_edit_npz("audio.train.npz", labels=lambda y: (y + 1) % 4),
                      "audio.train.npz: labels: item 'train-0' has label 1 here but 0 in image.train.npz"),
    "partial-val": (lambda src: (src / "text.val.npz").unlink(), "text.val.npy: file: file not found (audio, image have val files"),
    "duplicate-class": (lambda src: (src / "classes.txt").write_text("a\nb\na\nc\n"), "classes.txt: classes: class 'a' is named twice"),
    "object-array": (_edit_npz("image.test.npz", ids=lambda i: np.array(list(i), dtype=object)),
                     "image.test.npz: arrays: not a numeric array (object array"),
}


NPY_CORRUPT = {
    "truncated-npy": (_truncate("image.test.npy"), "image.test.npy: features: cannot read (truncated or corrupt file"),
    "truncated-labels": (_truncate("text.train.labels.npy", 0.9), "text.train.labels.npy: labels: cannot read (truncated or corrupt"),
    "missing-labels": (lambda src: (src / "audio.val.labels.npy").unlink(),
                       "audio.val.npy: labels: missing (give audio.val.labels.npy or labels.val.npy)"),
    "ids-count": (lambda src: (src / "image.train.ids.txt").write_text("a\nb\n"), "image.train.ids.txt: ids: wrong shape: 2 ids for 36"),
    "ids-not-utf8": (lambda src: (src / "text.test.ids.txt").write_bytes(b"\xff\xfe\n" * 12), "text.test.ids.txt: ids: not UTF-8 text"),
    "ids-only-in-one-split": (lambda src: (src / "image.val.ids.txt").unlink(),
                              "image.val.npy: ids: missing (image has ids in its train, test files"),
    "huge-label-without-classes": (lambda src: (src / "classes.txt").unlink() or np.save(
        src / "text.train.labels.npy", _labels_with(1e7)(np.load(src / "text.train.labels.npy"))),
        "text.train.labels.npy: labels: labels out of range: found 10000000: 10000001 classes for only 156 items"),
}


CASES = {**{(c, "npz"): v for c, v in CORRUPT.items()}, **{(c, "npy"): v for c, v in NPY_CORRUPT.items()}}


@pytest.mark.parametrize("case, fmt", list(CASES), ids=[f"{fmt}-{c}" for c, fmt in CASES])
def test_corrupt_layout_is_one_line_and_writes_nothing(tmp_path, capsys, paired, case, fmt):
    edit, fragment = CASES[case, fmt]
    src = write_layout(tmp_path / "layout", paired, fmt)
    edit(src)
    code, out, err = cli(["import", src, "--out", tmp_path / "out"], capsys)
    assert_one_error(code, err, fragment)
    assert out == ""
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("argv, fragment", [
    (["--val-fraction", "0.2"], "--val-fraction: the layout has its own val files"),
    (["--val-fraction", "1"], "--val-fraction: must be in [0, 1)"),
    (["--label-base", "2"], "--label-base: invalid choice"),
])
def test_bad_options(tmp_path, capsys, paired, argv, fragment):
    src = write_layout(tmp_path / "layout", paired, "npz")
    code, _, err = cli(["import", src, "--out", tmp_path / "out", *argv], capsys)
    assert_one_error(code, err, fragment)
    assert_nothing_written(tmp_path)


def test_existing_output_and_missing_dir_are_refused(tmp_path, capsys, paired):
    src = write_layout(tmp_path / "layout", paired, "npz")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep").write_text("mine")
    code, _, err = cli(["import", src, "--out", tmp_path / "out"], capsys)
    assert_one_error(code, err, "out: output directory already exists")
    assert (tmp_path / "out" / "keep").read_text() == "mine"
    code, _, err = cli(["import", tmp_path / "nowhere", "--out", tmp_path / "o2"], capsys)
    assert_one_error(code, err, "nowhere: layout: not a directory")


def _ragged(src):
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pq.read_table(src / "text.test.parquet")
    rows = t.column("features").to_pylist()
    rows[4] = rows[4][:-1]
    pq.write_table(t.set_column(0, "features", pa.array(rows)), src / "text.test.parquet")


@pytest.mark.parametrize("edit, fragment", [
    (_truncate("image.train.parquet"), "image.train.parquet: file: cannot read (truncated or corrupt file"),
    (_ragged, "text.test.parquet: features: wrong shape: rows have 11 to 12 values"),
])
def test_corrupt_parquet_is_one_line(tmp_path, capsys, paired, edit, fragment):
    pytest.importorskip("pyarrow")
    src = write_layout(tmp_path / "layout", paired, "parquet")
    edit(src)
    code, _, err = cli(["import", src, "--out", tmp_path / "out"], capsys)
    assert_one_error(code, err, fragment)
    assert_nothing_written(tmp_path)


# --------------------------------------------------------------------------- import semantics (#20 item 5)


def test_a_utf8_bom_is_stripped_from_classes_and_ids(tmp_path, capsys, paired):
    src = write_layout(tmp_path / "layout", paired, "npy")
    (src / "classes.txt").write_text("\ufeff" + "".join(f"{c}\n" for c in paired.classes), encoding="utf-8")
    ids = src / "image.train.ids.txt"
    ids.write_text("\ufeff" + ids.read_text(), encoding="utf-8")
    code, _, err = cli(["import", src, "--out", tmp_path / "out"], capsys)
    assert (code, err) == (0, ""), err
    fs = load_feature_set(tmp_path / "out")
    assert fs.classes == paired.classes and fs.paired                   # the ids still pair image with text
    assert not any("\ufeff" in i for ids in fs.manifest["item_ids"]["id"].values() for i in ids)


def _test_ids_as_train_ids(src):
    for m in ("image", "text", "audio"):
        z = dict(np.load(src / f"{m}.test.npz"))
        z["ids"] = np.array([f"train-{r}" for r in range(len(z["ids"]))])
        np.savez(src / f"{m}.test.npz", **z)


def test_test_ids_equal_to_train_ids_are_refused_unless_allowed(tmp_path, capsys, paired):
    src = write_layout(tmp_path / "layout", paired, "npz")
    _test_ids_as_train_ids(src)
    code, out, err = cli(["import", src, "--out", tmp_path / "out"], capsys)
    assert_one_error(code, err, "image.test.npz: ids: id 'train-0' is both a train and a test item of image")
    assert out == ""
    assert_nothing_written(tmp_path)
    code, _, err = cli(["import", src, "--out", tmp_path / "out", "--allow-id-overlap"], capsys)
    assert (code, err) == (0, ""), err
    assert load_feature_set(tmp_path / "out").count("image", "test") == paired.count("image", "test")


def test_a_cvs_tf_feature_set_is_named_as_one(tmp_path, capsys, paired):
    code, out, err = cli(["import", paired.path, "--out", tmp_path / "out"], capsys)
    assert_one_error(code, err, "layout: this is already a cvs_tf feature set")
    assert "--dataset DIR" in err and out == ""
    assert_nothing_written(tmp_path)


def test_labels_of_shape_n_by_1_are_class_ids_and_multi_hot_must_be_0_1(tmp_path, capsys, paired):
    src = write_layout(tmp_path / "layout", paired, "npy")
    for p in src.glob("*.labels.npy"):
        np.save(p, np.load(p)[:, None])
    code, _, err = cli(["import", src, "--out", tmp_path / "out"], capsys)
    assert (code, err) == (0, ""), err
    np.testing.assert_array_equal(load_feature_set(tmp_path / "out").y("text", "test"), paired.y("text", "test"))
    hot = np.eye(4, dtype=np.int64)[np.load(src / "text.test.labels.npy")[:, 0]] * 2
    np.save(src / "text.test.labels.npy", hot)
    code, _, err = cli(["import", src, "--out", tmp_path / "out2"], capsys)
    assert_one_error(code, err, "text.test.labels.npy: labels: labels out of range: multi-hot labels must be 0/1, found 2")
