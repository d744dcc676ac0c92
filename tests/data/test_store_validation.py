"""The store refuses malformed sets up front (#12 cases 8, 9, 11) and cleans temporaries of dead writers (#12 case 4)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cvs_tf.data import store
from cvs_tf.data.store import (
    FeatureSetError,
    carve_validation,
    load_feature_set,
    save_feature_set,
    sha256_file,
)
from tests.data.cli_helpers import assert_one_error
from tests.data.cli_helpers import data_cli as run
from tests.data.temporaries import dead_pid, fake_temp
from tests.helpers import make_toy_featureset

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.toy(paired=True)


def edit_manifest(path: Path, edit) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    edit(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


def replace_array(path: Path, fname: str, arr: np.ndarray) -> None:
    """Overwrite one array file and keep the manifest consistent (shape, dtype, sha256), as a hand-made set would."""
    np.save(path / fname, arr, allow_pickle=False)

    def edit(m):
        m["arrays"][fname] = {"shape": list(arr.shape), "dtype": str(arr.dtype), "sha256": sha256_file(path / fname)}
    edit_manifest(path, edit)


# --------------------------------------------------------------------------- case 8: manifest types


def _set(*keys, value):
    def edit(m):
        d = m
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
    return edit


MANIFEST_VARIANTS = [
    ("arrays-list", _set("arrays", value=[1]), "arrays: must be a JSON object, got array"),
    ("arrays-entry-int", _set("arrays", "image.train.x.npy", value=1), "arrays.image.train.x.npy: must be a JSON object"),
    ("arrays-shape-str", _set("arrays", "image.train.y.npy", "shape", value="36"), "arrays.image.train.y.npy.shape"),
    ("arrays-sha-int", _set("arrays", "image.test.y.npy", "sha256", value=7), "arrays.image.test.y.npy.sha256"),
    ("modalities-list", _set("modalities", value=["image", "text"]), "modalities: must be a JSON object, got array"),
    ("modality-str", _set("modalities", "image", value="16"), "modalities.image: must be a JSON object"),
    ("dim-str", _set("modalities", "image", "dim", value="16"), "modalities.image.dim: must be a positive integer"),
    ("dim-bool", _set("modalities", "text", "dim", value=True), "modalities.text.dim: must be a positive integer"),
    ("counts-list", _set("modalities", "image", "counts", value=[36, 4, 12]), "modalities.image.counts: must be a JSON object"),
    ("count-float", _set("modalities", "image", "counts", "train", value=36.5), "modalities.image.counts.train"),
    ("count-negative", _set("modalities", "image", "counts", "val", value=-4), "modalities.image.counts.val"),
    ("classes-int", _set("classes", value=4), "classes: must be a non-empty list of strings, got number"),
    ("classes-of-ints", _set("classes", value=[0, 1, 2, 3]), "classes: must be a non-empty list of strings"),
    ("name-int", _set("name", value=3), "name: must be a non-empty string"),
    ("provenance-list", _set("provenance", value=["x"]), "provenance: must be a JSON object, got array"),
    ("synthetic-str", _set("provenance", "synthetic", value="no"), "provenance.synthetic: must be true or false"),
    ("validation-str", _set("validation", value="10%"), "validation: must be a JSON object, got string"),
    ("fraction-str", _set("validation", "fraction", value="0.1"), "validation.fraction"),
    ("fraction-one", _set("validation", "fraction", value=1.0), "validation.fraction"),
    ("label-kind-list", _set("label_kind", value=["single"]), "label_kind: must be one of"),
    ("pairing-dict", _set("pairing", value={"a": 1}), "pairing: must be one of"),
    ("format-version-bool", _set("format_version", value=True), "format_version"),
    ("format-version-str", _set("format_version", value="1"), "format_version"),
    ("zero-shot-int", _set("zero_shot", value=3), "zero_shot: must be a JSON object"),
    ("zero-shot-out-of-range", _set("zero_shot", value={"seen": [0, 1], "unseen": [9]}), "zero_shot.unseen"),
    ("zero-shot-overlap", _set("zero_shot", value={"seen": [0, 1, 2], "unseen": [2, 3]}), "zero_shot: class 2 is both"),
    ("zero-shot-empty", _set("zero_shot", value={"seen": [0, 1, 2, 3], "unseen": []}), "zero_shot.unseen: must be a non-empty"),
    ("unknown-split", _set("modalities", "audio", "counts", "extra", value=1), "modalities.audio.counts: unknown split"),
]


@pytest.mark.parametrize("case, edit, fragment", MANIFEST_VARIANTS, ids=[v[0] for v in MANIFEST_VARIANTS])
def test_manifest_fields_of_the_wrong_type_are_one_line_errors(toy_set, capsys, case, edit, fragment):
    edit_manifest(toy_set, edit)
    code, out, err = run(["inspect", toy_set], capsys)
    assert_one_error(code, err, "manifest.json: ", fragment)
    assert out == ""
    with pytest.raises(FeatureSetError, match="manifest.json: "):
        load_feature_set(toy_set)


def test_zero_shot_labels_must_follow_the_split(tmp_path, capsys):
    path = make_toy_featureset(tmp_path / "z", paired=True)
    edit_manifest(path, _set("zero_shot", value={"seen": [0, 1, 2], "unseen": [3]}))  # train holds class 3 too
    code, _, err = run(["inspect", path], capsys)
    assert_one_error(code, err, "image.train.y.npy: labels: class 3 in train is not a zero_shot seen class")


def test_manifest_that_is_not_an_object(toy_set, capsys):
    (toy_set / "manifest.json").write_text("[1, 2]")
    code, _, err = run(["inspect", toy_set], capsys)
    assert_one_error(code, err, "manifest.json: manifest: must be a JSON object, got array")


@pytest.mark.parametrize("split", ["test", "train"])
def test_a_modality_with_no_test_or_train_rows_is_refused_at_load(toy_set, capsys, split):
    replace_array(toy_set, f"audio.{split}.x.npy", np.zeros((0, 6), np.float32))
    replace_array(toy_set, f"audio.{split}.y.npy", np.zeros(0, np.int32))
    edit_manifest(toy_set, _set("modalities", "audio", "counts", split, value=0))
    edit_manifest(toy_set, _set("pairing", value="class"))  # so the unequal counts are legal
    code, _, err = run(["inspect", toy_set], capsys)
    assert_one_error(code, err, f"manifest.json: modalities.audio.counts.{split}: 0 rows")


def test_float_labels_that_are_not_integers_are_refused(toy_set, capsys):
    y = np.load(toy_set / "image.train.y.npy").astype(np.float64)
    y[3] = 3.5
    replace_array(toy_set, "image.train.y.npy", y)
    code, _, err = run(["inspect", toy_set], capsys)
    assert_one_error(code, err, "image.train.y.npy: labels: not integers (found 3.5)")


def test_integer_valued_float_labels_still_load_as_integers(toy_set):
    y = np.load(toy_set / "image.train.y.npy")
    replace_array(toy_set, "image.train.y.npy", y.astype(np.float32))
    fs = load_feature_set(toy_set)
    assert fs.y("image", "train").dtype.kind == "i"
    np.testing.assert_array_equal(fs.y("image", "train"), y)


def test_bool_labels_are_refused(tmp_path, capsys):
    path = make_toy_featureset(tmp_path / "b", n_classes=2, paired=True)
    y = np.load(path / "text.test.y.npy").astype(bool)
    replace_array(path, "text.test.y.npy", y)
    code, _, err = run(["inspect", path], capsys)
    assert_one_error(code, err, "text.test.y.npy: labels: dtype bool")


@pytest.mark.parametrize("dtype, what", [(np.complex64, "complex64"), ("<U4", "<U4"), (np.int32, "int32"),
                                         (bool, "bool")])
def test_features_must_be_real_floats(toy_set, capsys, dtype, what):
    x = np.load(toy_set / "text.val.x.npy")
    replace_array(toy_set, "text.val.x.npy", x.astype(dtype))
    code, _, err = run(["inspect", toy_set], capsys)
    assert_one_error(code, err, f"text.val.x.npy: features: dtype {what}")


def test_multi_hot_sets_still_load(tmp_path):
    fs = load_feature_set(make_toy_featureset(tmp_path / "m", label_kind="multi", paired=True))
    assert fs.y("image", "train").dtype == np.uint8 and fs.y("image", "train").ndim == 2


@pytest.mark.parametrize("name", ["tux12", "digits10"])
def test_the_shipped_sets_pass_every_check(name):
    fs = load_feature_set(REPO / "cvs_tf" / "datasets" / name)
    assert fs.has_split("val") and fs.has_split("test")


def test_save_refuses_labels_it_would_silently_change(tmp_path):
    x = np.ones((4, 3), np.float32)
    data = {"image": {"train": (x, np.array([0, 1, 0.5, 1])), "val": (x, np.array([0, 1, 0, 1])),
                      "test": (x, np.array([0, 1, 0, 1]))}}
    with pytest.raises(FeatureSetError, match=r"image/train labels: not integers \(found 0.5\)"):
        save_feature_set(tmp_path / "out", "t", data, ["a", "b"])
    data["image"]["train"] = (x.astype(np.complex64), np.array([0, 1, 0, 1]))
    with pytest.raises(FeatureSetError, match="image/train features: dtype complex64"):
        save_feature_set(tmp_path / "out", "t", data, ["a", "b"])
    assert list(tmp_path.iterdir()) == []


def test_save_errors_name_the_target_not_the_temporary(tmp_path):
    x = np.ones((4, 3), np.float32)
    x[1, 1] = np.nan
    data = {"image": {s: (x, np.array([0, 1, 0, 1])) for s in ("train", "val", "test")}}
    with pytest.raises(FeatureSetError) as info:
        save_feature_set(tmp_path / "out", "t", data, ["a", "b"])
    assert str(tmp_path / "out" / "image.train.x.npy") in str(info.value) and ".tmp-" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- case 9: path traversal


def test_a_modality_named_dot_dot_never_reads_outside_the_set(tmp_path, capsys):
    path = make_toy_featureset(tmp_path / "set", paired=True)
    # put the arrays the traversal would read next to the set, with a manifest that matches them
    for s in ("train", "val", "test"):
        for k in ("x", "y"):
            os.replace(path / f"audio.{s}.{k}.npy", tmp_path / f"outside.{s}.{k}.npy")

    def edit(m):
        m["modalities"]["../outside"] = m["modalities"].pop("audio")
        for s in ("train", "val", "test"):
            for k in ("x", "y"):
                m["arrays"][f"../outside.{s}.{k}.npy"] = m["arrays"].pop(f"audio.{s}.{k}.npy")
    edit_manifest(path, edit)
    code, out, err = run(["inspect", path], capsys)
    assert_one_error(code, err, "manifest.json: modalities: invalid modality name '../outside'")


@pytest.mark.parametrize("bad", ["Image", "a/b", "", "-x", "x y", "a" * 65, "..", "image."])
def test_modality_names_follow_a_strict_pattern(tmp_path, bad):
    path = make_toy_featureset(tmp_path / "set", modalities={"image": 4, "text": 3})

    def edit(m):
        m["modalities"][bad] = m["modalities"].pop("text")
    edit_manifest(path, edit)
    with pytest.raises(FeatureSetError, match="invalid modality name"):
        load_feature_set(path)
    x = np.ones((4, 3), np.float32)
    data = {bad: {s: (x, np.array([0, 1, 0, 1])) for s in ("train", "val", "test")}}
    with pytest.raises(FeatureSetError, match="invalid modality name"):
        save_feature_set(tmp_path / "out", "t", data, ["a", "b"])
    assert not (tmp_path / "out").exists()


def test_save_of_a_traversing_modality_writes_nothing_outside(tmp_path):
    x = np.ones((4, 3), np.float32)
    data = {"../escape": {s: (x, np.array([0, 1, 0, 1])) for s in ("train", "val", "test")}}
    with pytest.raises(FeatureSetError, match="invalid modality name"):
        save_feature_set(tmp_path / "sub" / "out", "t", data, ["a", "b"])
    assert not list(tmp_path.rglob("*.npy"))


def test_digit_leading_and_dashed_names_are_fine(tmp_path):
    path = make_toy_featureset(tmp_path / "set", modalities={"3d": 4, "rgb_depth-2": 3})
    assert load_feature_set(path).modalities == ["3d", "rgb_depth-2"]


def test_an_array_symlinked_out_of_the_set_is_refused(tmp_path, capsys):
    path = make_toy_featureset(tmp_path / "set", paired=True)
    os.replace(path / "text.test.x.npy", tmp_path / "elsewhere.npy")
    os.symlink(tmp_path / "elsewhere.npy", path / "text.test.x.npy")
    code, _, err = run(["inspect", path], capsys)
    assert_one_error(code, err, "text.test.x.npy: file: resolves outside the dataset directory")


def test_unknown_array_entries_are_refused(toy_set, capsys):
    edit_manifest(toy_set, _set("arrays", "../../etc/passwd", value={"shape": [1], "dtype": "int32", "sha256": "0" * 64}))
    code, _, err = run(["inspect", toy_set], capsys)
    assert_one_error(code, err, "manifest.json: arrays.../../etc/passwd: not a file of this set")


# --------------------------------------------------------------------------- case 11: no validation split


def test_a_set_without_validation_split_is_valid_and_says_so(tmp_path, capsys):
    code, out, err = run(["synth", "pascal", "--scale", "0.05", "--val-fraction", "0", "--out", tmp_path / "p"],
                         capsys)
    assert (code, err) == (0, "")
    assert "validation  none (val fraction 0: the whole training split is used for training)" in out
    fs = load_feature_set(tmp_path / "p")
    assert fs.manifest["validation"]["fraction"] == 0
    assert fs.count("image", "val") == 0 and fs.x("image", "val").shape == (0, fs.dim("image"))
    assert not fs.has_split("val") and fs.has_split("train") and fs.has_split("test")
    assert fs.count("image", "train") == 40  # 800 * 0.05: nothing held out
    code, out, err = run(["inspect", tmp_path / "p"], capsys)
    assert (code, err) == (0, "") and "validation  none" in out


def test_has_split_is_per_modality(tmp_path):
    x = np.ones((4, 3), np.float32)
    y = np.array([0, 1, 0, 1])
    data = {"image": {"train": (x, y), "val": (x[:2], y[:2]), "test": (x, y)},
            "text": {"train": (x, y), "val": (x[:0], y[:0]), "test": (x, y)}}
    fs = load_feature_set(save_feature_set(tmp_path / "o", "t", data, ["a", "b"],
                                           validation={"fraction": 0.1, "seed": 0}))
    assert fs.has_split("val", ["image"]) and not fs.has_split("val", ["text"]) and not fs.has_split("val")
    with pytest.raises(FeatureSetError, match="unknown split"):
        fs.has_split("dev")


def test_fraction_zero_with_val_rows_is_inconsistent(toy_set, capsys):
    edit_manifest(toy_set, _set("validation", "fraction", value=0))
    code, _, err = run(["inspect", toy_set], capsys)
    assert_one_error(code, err, "manifest.json: validation.fraction: 0 (no validation split) but modality 'image' has 4 val rows")


@pytest.mark.parametrize("fraction", [1.0, -0.1, float("nan"), float("inf")])
def test_library_refuses_val_fractions_outside_0_1(tmp_path, fraction):
    x = np.ones((4, 3), np.float32)
    splits = {"image": {"train": (x, np.array([0, 1, 0, 1])), "test": (x, np.array([0, 1, 0, 1]))}}
    with pytest.raises(FeatureSetError, match=r"val_fraction: must be in \[0, 1\)"):
        carve_validation(splits, fraction)
    data = {"image": {s: (x, np.array([0, 1, 0, 1])) for s in ("train", "val", "test")}}
    with pytest.raises(FeatureSetError, match=r"validation.fraction"):
        save_feature_set(tmp_path / "o", "t", data, ["a", "b"], validation={"fraction": fraction})
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- case 4: stale temporaries


def test_synth_removes_temporaries_of_dead_writers_only(tmp_path, capsys):
    stale = fake_temp(tmp_path, "out", dead_pid())
    stale_other = fake_temp(tmp_path, "another", dead_pid())
    live = fake_temp(tmp_path, "out", os.getppid())  # pytest's parent: alive for the whole test
    remote = fake_temp(tmp_path, "out", dead_pid(), hostname="some-other-host")
    unrelated = tmp_path / ".out.tmp-notours"
    unrelated.mkdir()
    code, _, err = run(["synth", "pascal", "--scale", "0.05", "--out", tmp_path / "out"], capsys)
    assert (code, err) == (0, "")
    assert not stale.exists() and not stale_other.exists()
    assert live.is_dir() and remote.is_dir() and unrelated.is_dir()
    assert (tmp_path / "out" / "manifest.json").is_file()


def test_old_format_temporaries_of_the_same_target_go_once_a_day_old(tmp_path):
    old = tmp_path / ".out.tmp-k2j4h5g6"
    young = tmp_path / ".out.tmp-a1b2c3d4"
    for d in (old, young):
        d.mkdir()
    day_ago = time.time() - 2 * 86400
    os.utime(old, (day_ago, day_ago))
    removed = store.remove_stale_temporaries(tmp_path / "out")
    assert removed == [old] and young.is_dir()


KILLER = """
import os, signal, sys, types
import numpy as np
pkg = types.ModuleType("cvs_tf")  # skip cvs_tf/__init__ (TensorFlow): the store alone writes the set
pkg.__path__ = [os.path.join(sys.argv[2], "cvs_tf")]
sys.modules["cvs_tf"] = pkg
import cvs_tf.data.store as store
real_save = np.save
def save(path, arr, **kw):
    real_save(path, arr, **kw)
    os.kill(os.getpid(), signal.SIGKILL)  # kill -9 in the middle of writing the set
store.np.save = save
from cvs_tf.data.synthetic import write_synthetic
write_synthetic("pascal", sys.argv[1], 0.05)
"""


def test_kill_9_during_a_write_then_the_next_write_cleans_up(tmp_path, capsys):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", KILLER, str(tmp_path / "a"), str(REPO)], env=env, cwd=tmp_path,
                            stderr=subprocess.PIPE)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == -9, stderr[-2000:]
    left = [p for p in tmp_path.iterdir() if p.name.startswith(".a.tmp-")]
    assert len(left) == 1 and not (tmp_path / "a").exists()  # what the issue saw: a temporary left behind
    assert left[0].name.startswith(f".a.tmp-{proc.pid}@")
    code, _, err = run(["synth", "pascal", "--scale", "0.05", "--out", tmp_path / "b"], capsys)
    assert (code, err) == (0, "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_save_refuses_an_empty_train_or_test_split_before_writing(tmp_path):
    x, y = np.ones((4, 3), np.float32), np.array([0, 1, 0, 1])
    data = {"image": {"train": (x, y), "val": (x[:0], y[:0]), "test": (x[:0], y[:0])}}
    with pytest.raises(FeatureSetError, match=r"^t: image/test: 0 rows"):
        save_feature_set(tmp_path / "out", "t", data, ["a", "b"])
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- overwrite


def _tiny(value: float):
    x = np.full((4, 3), value, np.float32)
    return {"image": {s: (x, np.array([0, 1, 0, 1])) for s in ("train", "val", "test")}}


def test_overwrite_replaces_a_set_only_once_the_new_one_is_valid(tmp_path):
    import stat

    out = tmp_path / "set"
    save_feature_set(out, "t", _tiny(1.0), ["a", "b"])
    with pytest.raises(FeatureSetError, match="already exists"):
        save_feature_set(out, "t", _tiny(2.0), ["a", "b"])
    bad = _tiny(2.0)
    bad["image"]["test"] = (np.full((4, 3), np.nan, np.float32), np.array([0, 1, 0, 1]))
    with pytest.raises(FeatureSetError, match=rf"^{out}/image.test.x.npy: features: contain NaN or Inf$"):
        save_feature_set(out, "t", bad, ["a", "b"], overwrite=True)   # the error names out, not the temporary
    assert float(load_feature_set(out).x("image", "train")[0, 0]) == 1.0   # the old set is intact
    save_feature_set(out, "t", _tiny(2.0), ["a", "b"], overwrite=True)
    assert float(load_feature_set(out).x("image", "train")[0, 0]) == 2.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]           # no temporary, no backup left
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~mask             # the permissions of a plain mkdir
