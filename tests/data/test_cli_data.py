"""``python -m cvs_tf.data``: the inspect table, and bad input through the CLI (exit 2, one ``error:`` line naming file and key, no output)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cvs_tf.cli.data import parse_args
from cvs_tf.data.synthetic import write_synthetic
from tests.data.cli_helpers import assert_one_error
from tests.data.cli_helpers import data_cli as run
from tests.data.converters import layouts
from tests.data.converters.layouts import VERSIONS
from tests.helpers import make_toy_featureset

REPO = Path(__file__).resolve().parents[2]






def assert_nothing_written(tmp_path):
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp")]


# --------------------------------------------------------------------------- inspect

def test_parse_args_defaults():
    args = parse_args(["convert", "nuswide", "src", "--out", "o"])
    assert (args.val_fraction, args.seed, args.multi_label, args.variant) == (0.1, 0, False, "auto")
    assert parse_args(["synth", "cub", "--out", "o"]).scale == 1.0


def test_inspect_table_of_a_real_set(tmp_path, capsys):
    path = make_toy_featureset(tmp_path / "toy", paired=True, name="toy")
    code, out, err = run(["inspect", path], capsys)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["dataset", "toy", "[synthetic", "stand-in]"]  # tests.helpers marks it synthetic
    assert "classes     4 (single-label)" in out and "pairing     instance-paired" in out
    rows = {ln.split()[0]: ln.split()[1:] for ln in lines if ln.startswith("  ")}
    # 40 train, 10 per class -> 1 per class held out; 12 test
    assert rows["modality"] == ["dim", "train", "val", "test"]
    assert rows["image"] == ["16", "36", "4", "12"] and rows["audio"] == ["6", "36", "4", "12"]
    assert rows["total"] == ["108", "12", "36"]


def test_inspect_resolves_a_name_under_cvs_tf_data(tmp_path, capsys, monkeypatch):
    write_synthetic("pascal", tmp_path / "root" / "pascal", 0.05)
    monkeypatch.setenv("CVS_TF_DATA", str(tmp_path / "root"))
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["inspect", "pascal"], capsys)
    assert (code, err) == (0, "")
    assert "dataset     pascal  [synthetic stand-in]" in out and "modalities  2" in out


def test_inspect_unknown_name_hints_at_synth(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CVS_TF_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["inspect", "xmedia"], capsys)
    assert_one_error(code, err, "xmedia: no such dataset directory", "python -m cvs_tf.data synth xmedia")


def test_inspect_hash_mismatch(tmp_path, capsys):
    path = write_synthetic("pascal", tmp_path / "set", 0.05)
    target = path / "text.test.x.npy"
    arr = np.load(target)
    arr[0, 0] += 1.0
    np.save(target, arr)  # same shape and dtype, different bytes
    code, _, err = run(["inspect", path], capsys)
    assert_one_error(code, err, "text.test.x.npy: sha256: does not match manifest")
    code, out, err = run(["inspect", path, "--no-verify"], capsys)
    assert (code, err) == (0, "")


# --------------------------------------------------------------------------- convert: bad input

def test_missing_key(tmp_path, capsys):
    lay = layouts.xmedia(tmp_path / "src", "v7.3")
    path = lay.src
    # rewrite without teVidCat
    import h5py

    with h5py.File(path, "a") as f:
        del f["teVidCat"]
    code, _, err = run(["convert", "xmedia", path, "--out", tmp_path / "out"], capsys)
    assert_one_error(code, err, "XMediaFeatures.mat: teVidCat: missing key")
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("version", VERSIONS)
def test_missing_dscmr_file(tmp_path, capsys, version):
    lay = layouts.dscmr(tmp_path / "src", version)
    (lay.src / "test_txt.mat").unlink()
    code, _, err = run(["convert", "pascal", lay.src, "--out", tmp_path / "out"], capsys)
    assert_one_error(code, err, "test_txt.mat: test_txt: file not found")
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("version", VERSIONS)
def test_wrong_shape_label_count(tmp_path, capsys, version):
    lay = layouts.xmedia(tmp_path / "src", version, trImgCat=np.ones((11, 1)))  # I_tr_CNN has 12 rows
    code, _, err = run(["convert", "xmedia", lay.src, "--out", tmp_path / "out"], capsys)
    assert_one_error(code, err, "XMediaFeatures.mat: trImgCat: wrong shape: 11 labels for 12 feature rows of I_tr_CNN")
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("version", VERSIONS)
def test_wrong_shape_feature_dim_across_splits(tmp_path, capsys, version):
    lay = layouts.xmedianet(tmp_path / "src", version, T_te=np.ones((5, 7), np.float32))  # T_tr is 6-d
    code, _, err = run(["convert", "xmedianet", lay.src, "--out", tmp_path / "out"], capsys)
    assert_one_error(code, err, "XMediaNetFeatures.mat: T_te: wrong shape (5, 7): feature dim 7, other split has 6")
    assert_nothing_written(tmp_path)


def test_wrong_shape_labels_of_train_then_test(tmp_path, capsys):
    lay = layouts.xmedianet(tmp_path / "src", A_labs=np.ones((14, 1)))  # A_tr + A_te = 10 + 5 rows
    code, _, err = run(["convert", "xmedianet", lay.src, "--out", tmp_path / "out"], capsys)
    assert_one_error(code, err, "A_labs: wrong shape: 14 labels for 15 feature rows of A_tr + A_te")
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("version", VERSIONS)
def test_nan_features(tmp_path, capsys, version):
    bad = np.ones((12, 6), np.float32)
    bad[4, 2] = np.nan
    lay = layouts.dscmr(tmp_path / "src", version, train_txt=bad)
    code, _, err = run(["convert", "nuswide", lay.src, "--out", tmp_path / "out"], capsys)
    assert_one_error(code, err, "train_txt.mat: train_txt: contains NaN or Inf (1 values; first at row 5, column 3)")
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("version", VERSIONS)
def test_labels_out_of_range_one_based(tmp_path, capsys, version):
    labels = np.ones((8, 1))
    labels[3] = 0  # XMedia labels are 1-based
    lay = layouts.xmedia(tmp_path / "src", version, trAudCat=labels)
    code, _, err = run(["convert", "xmedia", lay.src, "--out", tmp_path / "out"], capsys)
    assert_one_error(code, err, "XMediaFeatures.mat: trAudCat: labels out of range: found 0, labels here are 1-based")
    assert_nothing_written(tmp_path)


def test_labels_out_of_range_zero_based(tmp_path, capsys):
    lay = layouts.dscmr(tmp_path / "src", test_img_lab=np.array([[0.0], [1.0], [-1.0], [2.0], [3.0]]))
    code, _, err = run(["convert", "pascal", lay.src, "--out", tmp_path / "out"], capsys)
    assert_one_error(code, err, "test_img_lab.mat: test_img_lab: labels out of range: found -1")
    assert_nothing_written(tmp_path)


def test_labels_out_of_range_wikipedia_categories(tmp_path, capsys):
    lines = ["t0\ti0\t1", "t1\ti1\t4", "t2\ti2\t2", "t3\ti3\t3", "t4\ti4\t1", "t5\ti5\t2"]  # 3 categories
    lay = layouts.wikipedia(tmp_path / "src", list_lines={"test": lines})
    code, _, err = run(["convert", "wikipedia", lay.src, "--out", tmp_path / "out"], capsys)
    assert_one_error(code, err, "testset_txt_img_cat.list: category: labels out of range: found 4")
    assert_nothing_written(tmp_path)


def test_wikipedia_list_rows_must_match_features(tmp_path, capsys):
    lay = layouts.wikipedia(tmp_path / "src", list_lines={"train": ["t0\ti0\t1"]})
    code, _, err = run(["convert", "wikipedia", lay.src, "--out", tmp_path / "out"], capsys)
    assert_one_error(code, err, "trainset_txt_img_cat.list: rows: 1 lines but I_tr has 9 feature rows")
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("name, builder, version", [
    ("xmedia", layouts.xmedia, "v5"), ("xmedianet", layouts.xmedianet, "v7.3"),
    ("cub", layouts.cub, "v5"), ("wikipedia", layouts.wikipedia, "v7.3"),
])
def test_truncated_file(tmp_path, capsys, name, builder, version):
    lay = builder(tmp_path / "src", version)
    victim = lay.files[0]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) * 2 // 3])
    code, _, err = run(["convert", name, lay.src, "--out", tmp_path / "out"], capsys)
    assert_one_error(code, err, f"{victim.name}: ")
    first_key = {"xmedia": "I_tr_CNN", "xmedianet": "I_tr", "cub": "img", "wikipedia": "I_tr"}[name]
    assert f"{victim.name}: {first_key}: " in err
    assert "truncated" in err or "corrupt" in err
    assert_nothing_written(tmp_path)


def test_output_exists_is_left_alone(tmp_path, capsys):
    lay = layouts.dscmr(tmp_path / "src")
    (tmp_path / "out").mkdir()
    code, _, err = run(["convert", "pascal", lay.src, "--out", tmp_path / "out"], capsys)
    assert_one_error(code, err, "output directory already exists")
    assert (tmp_path / "out").is_dir()


@pytest.mark.parametrize("argv, fragment", [
    (["convert", "xmedia", "src", "--out", "out", "--val-fraction", "1"], "--val-fraction: must be in [0, 1)"),
    (["convert", "pascal", "src", "--out", "out", "--variant", "doc2vec"], "--variant: only xmedianet"),
    (["convert", "imagenet", "src", "--out", "out"], "invalid choice: 'imagenet'"),
    (["convert", "xmedia", "nowhere", "--out", "out"], "nowhere: file: not found (give XMediaFeatures.mat or the directory holding it)"),
    (["convert", "xmedia", ".", "--out", "out"], "XMediaFeatures.mat: file: file not found"),
    (["convert", "cub", "nowhere", "--out", "out"], "nowhere: directory: not found"),
])
def test_convert_bad_arguments(tmp_path, capsys, monkeypatch, argv, fragment):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(argv, capsys)
    assert_one_error(code, err, fragment)
    assert_nothing_written(tmp_path)


def test_bad_input_as_a_subprocess_has_no_traceback(tmp_path):
    lay = layouts.xmedia(tmp_path / "src", "v5")
    data = lay.src.read_bytes()
    lay.src.write_bytes(data[:1000])
    proc = subprocess.run(
        [sys.executable, "-m", "cvs_tf.data", "convert", "xmedia", str(lay.src), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
    assert "XMediaFeatures.mat: I_tr_CNN: file is truncated" in proc.stderr
    assert_nothing_written(tmp_path)
