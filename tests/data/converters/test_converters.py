"""Every official layout (XMedia, XMediaNet + Doc2Vec, Pascal, NUS-WIDE, CUB, Wikipedia) in v5 and v7.3, converted through the CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cvs_tf.cli.data import main
from cvs_tf.data.store import FeatureSetError, load_feature_set
from cvs_tf.utils.cli import run_cli
from tests.data.converters import layouts
from tests.data.converters.layouts import VERSIONS

REPO = Path(__file__).resolve().parents[2]


def cli(argv, capsys):
    code = run_cli(main, [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def source_index(x_src: np.ndarray) -> dict:
    """Map each source row (as float32 bytes) to its row number."""
    return {row.astype(np.float32).tobytes(): i for i, row in enumerate(x_src)}


def check_converted(out: Path, layout, name: str):
    """The stored set holds exactly the source rows and labels, split train -> train+val, test untouched."""
    fs = load_feature_set(out)
    assert fs.name == name and not fs.synthetic and fs.data_label == "real features"
    assert set(fs.modalities) == set(layout.expected)
    assert fs.num_classes == layout.n_classes
    assert fs.manifest["pairing"] == layout.pairing and fs.label_kind == layout.label_kind
    prov = fs.manifest["provenance"]
    assert prov["converter"].startswith("cvs_tf.data.converters.") and prov["converter_version"] == "1"
    assert prov["source_files"] and not any(os.path.isabs(f) for f in prov["source_files"])
    rows_of = {}
    for m, exp in layout.expected.items():
        xtr, ytr = exp["train"]
        xte, yte = exp["test"]
        assert fs.dim(m) == xtr.shape[1]
        assert fs.x(m, "test").dtype == np.float32
        np.testing.assert_array_equal(fs.x(m, "test"), xte.astype(np.float32))
        np.testing.assert_array_equal(fs.y(m, "test"), yte)
        assert fs.count(m, "train") + fs.count(m, "val") == len(xtr)
        assert fs.count(m, "val") >= 1
        index = source_index(xtr)
        rows = {}
        for split in ("train", "val"):
            src_rows = np.array([index[r.tobytes()] for r in np.asarray(fs.x(m, split))])
            np.testing.assert_array_equal(fs.y(m, split), ytr[src_rows])
            rows[split] = src_rows
        assert sorted(np.concatenate([rows["train"], rows["val"]])) == list(range(len(xtr)))
        rows_of[m] = rows
    if layout.pairing == "instance":  # row i of every modality is the same source item
        first = next(iter(rows_of.values()))
        for rows in rows_of.values():
            for split in ("train", "val"):
                np.testing.assert_array_equal(rows[split], first[split])
    return fs


def convert_ok(capsys, tmp_path, name, layout, *options, src=None):
    """Convert through the CLI in-process; it must succeed silently on stderr and hold the layout's data."""
    code, out, err = cli(["convert", name, src or layout.src, "--out", tmp_path / "out", *options], capsys)
    assert (code, err) == (0, "")
    return check_converted(tmp_path / "out", layout, name), out


@pytest.mark.parametrize("version", VERSIONS)
def test_xmedia(tmp_path, capsys, version):
    lay = layouts.xmedia(tmp_path / "src", version)
    fs, out = convert_ok(capsys, tmp_path, "xmedia", lay)
    assert fs.modalities == ["image", "text", "audio", "video", "3d"]
    assert fs.classes == ["class01", "class02", "class03", "class04"]  # keeps the 1-based source label
    assert fs.manifest["provenance"]["label_base"] == 1
    assert "xmedia: video test: the file holds 3 items; thesis Table 1 says 100" in out
    assert "xmedia: audio: dim 5 differs from the documented dim 29 (using the file's)" in out
    assert "xmedia: video test: 1 of 4 classes have no items" in out
    assert "MATLAB v7.3" in out if version == "v7.3" else "MATLAB v5" in out


def test_xmedia_directory_source_and_validation_options(tmp_path, capsys):
    lay = layouts.xmedia(tmp_path / "src")
    fs, _ = convert_ok(capsys, tmp_path, "xmedia", lay, "--val-fraction", "0.25", "--seed", "3", src=tmp_path / "src")
    assert fs.manifest["validation"]["fraction"] == 0.25 and fs.manifest["validation"]["seed"] == 3
    # image: 12 train items, 3 per class -> round(0.75) = 1 per class held out
    assert (fs.count("image", "train"), fs.count("image", "val")) == (8, 4)


@pytest.mark.parametrize("version", VERSIONS)
def test_xmedianet_labels_split_at_train_row_count(tmp_path, capsys, version):
    lay = layouts.xmedianet(tmp_path / "src", version)
    fs, out = convert_ok(capsys, tmp_path, "xmedianet", lay)
    assert fs.modalities == ["image", "text", "audio", "video", "3d"]
    assert fs.manifest["variant"] == "full" and fs.manifest["provenance"]["label_base"] == 1
    assert "variant full, labels 1-based" in out
    assert "xmedianet: image train: the file holds 15 items; thesis Table 1 says 32000" in out


@pytest.mark.parametrize("version", VERSIONS)
def test_xmedianet_doc2vec_variant_detected_from_file_name(tmp_path, capsys, version):
    lay = layouts.xmedianet(tmp_path / "src", version, doc2vec=True)
    fs, out = convert_ok(capsys, tmp_path, "xmedianet", lay, src=tmp_path / "src")
    assert fs.modalities == ["image", "text"] and fs.dim("text") == 30
    assert fs.manifest["variant"] == "doc2vec"
    assert fs.manifest["provenance"]["source_files"] == ["XMediaNet5View_Doc2Vec.mat"]
    assert "text: dim 30 differs from the documented dim 300" in out


def test_xmedianet_zero_based_labels_and_explicit_variant(tmp_path, capsys):
    lay = layouts.xmedianet(tmp_path / "src")
    # rewrite the same file with 0-based labels under a neutral name
    import scipy.io

    variables = {k: v for k, v in scipy.io.loadmat(lay.src).items() if not k.startswith("__")}
    for p in ("I", "T", "V", "A", "TD"):
        variables[f"{p}_labs"] = variables[f"{p}_labs"] - 1
    src = layouts.write_mat(tmp_path / "plain" / "features.mat", variables)
    fs, out = convert_ok(capsys, tmp_path, "xmedianet", lay, "--variant", "full", src=src)
    assert fs.classes[0] == "class00" and fs.manifest["provenance"]["label_base"] == 0
    assert "labels 0-based" in out


def test_xmedianet_full_variant_needs_all_modalities(tmp_path, capsys):
    layouts.xmedianet(tmp_path / "src", doc2vec=True)
    src = tmp_path / "src" / "XMediaNet5View_Doc2Vec.mat"
    code, _, err = cli(["convert", "xmedianet", src, "--out", tmp_path / "out", "--variant", "full"], capsys)
    assert code == 2 and not (tmp_path / "out").exists()
    assert err.startswith("error: ") and "XMediaNet5View_Doc2Vec.mat: V_tr: missing key" in err
    assert "--variant doc2vec" in err and err.count("\n") == 1


@pytest.mark.parametrize("name", ["pascal", "nuswide"])
@pytest.mark.parametrize("version", VERSIONS)
def test_dscmr_layout(tmp_path, capsys, name, version):
    lay = layouts.dscmr(tmp_path / "src", version)
    fs, out = convert_ok(capsys, tmp_path, name, lay)
    assert fs.paired and fs.modalities == ["image", "text"] and fs.classes[0] == "class00"
    assert fs.manifest["provenance"]["source_files"] == [
        "train_img.mat", "test_img.mat", "train_txt.mat", "test_txt.mat", "train_img_lab.mat", "test_img_lab.mat"]
    want = 800 if name == "pascal" else 8000
    assert f"{name}: image train: the file holds 12 items; thesis Table 3 says {want}" in out


@pytest.mark.parametrize("version", VERSIONS)
def test_nuswide_multi_label(tmp_path, capsys, version):
    lay = layouts.dscmr(tmp_path / "src", version, multi_label=True)
    fs, out = convert_ok(capsys, tmp_path, "nuswide", lay, "--multi-label")
    assert fs.label_kind == "multi" and fs.y("image", "test").shape == (5, 4)
    # train: 12 items, every third (4 items) has a second label -> 16 / 12 = 1.33 labels per item
    assert "train: 1.33 labels per item on average" in out
    assert "test: 1.40 labels per item on average" in out  # 5 items, rows 0 and 3 have two labels


def test_multi_hot_labels_without_the_option_are_rejected(tmp_path, capsys):
    layouts.dscmr(tmp_path / "src", multi_label=True)
    code, _, err = cli(["convert", "nuswide", tmp_path / "src", "--out", tmp_path / "out"], capsys)
    assert code == 2 and "train_img_lab.mat: train_img_lab: wrong shape (12, 4)" in err and "multi-label" in err
    code, _, err = cli(["convert", "pascal", tmp_path / "src", "--out", tmp_path / "out", "--multi-label"], capsys)
    assert code == 2 and err.startswith("error: --multi-label: only nuswide")


@pytest.mark.parametrize("version", VERSIONS)
def test_cub_zero_shot_split(tmp_path, capsys, version):
    lay = layouts.cub(tmp_path / "src", version)
    fs, out = convert_ok(capsys, tmp_path, "cub", lay)
    zs = fs.manifest["zero_shot"]
    assert zs == lay.extra["zero_shot"] == {"seen": [0, 2, 3, 5], "unseen": [1, 4]}
    assert fs.classes == lay.extra["names"]
    for split in ("train", "val"):
        assert set(np.unique(fs.y("image", split))) <= set(zs["seen"])
    assert set(np.unique(fs.y("image", "test"))) == set(zs["unseen"])
    assert "zero-shot split 4 seen / 2 unseen classes" in out
    assert "the split has 4 seen / 2 unseen classes; the thesis uses 150 / 50" in out
    assert "features/001.Bird_1.mat" in fs.manifest["provenance"]["source_files"]


def test_cub_class_order_without_classes_txt_is_sorted(tmp_path, capsys):
    lay = layouts.cub(tmp_path / "src", with_classes_txt=False)
    fs, _ = convert_ok(capsys, tmp_path, "cub", lay)
    assert fs.classes == sorted(lay.extra["names"])


@pytest.mark.parametrize("version", VERSIONS)
def test_wikipedia_ids_follow_their_rows(tmp_path, capsys, version):
    lay = layouts.wikipedia(tmp_path / "src", version)
    fs, out = convert_ok(capsys, tmp_path, "wikipedia", lay)
    assert fs.classes == ["cat0", "cat1", "cat2"]
    ids = fs.manifest["item_ids"]
    for split in ("train", "val", "test"):
        src_split = "test" if split == "test" else "train"
        index = source_index(lay.expected["image"][src_split][0])
        txt, img = lay.extra["ids"][src_split]
        rows = [index[r.tobytes()] for r in np.asarray(fs.x("image", split))]
        assert ids["text_id"][split] == [txt[i] for i in rows]
        assert ids["image_id"][split] == [img[i] for i in rows]
    assert "categories.list" in fs.manifest["provenance"]["source_files"]
    assert "wikipedia: image train: the file holds 9 items; the published split says 2173" in out


def test_wikipedia_without_categories_list(tmp_path, capsys):
    lay = layouts.wikipedia(tmp_path / "src", categories=False)
    fs, _ = convert_ok(capsys, tmp_path, "wikipedia", lay, src=lay.src / "raw_features.mat")
    assert fs.classes == ["class01", "class02", "class03"]


def test_convert_as_a_subprocess(tmp_path):
    layouts.dscmr(tmp_path / "src", "v7.3")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "cvs_tf.data", "convert", "pascal", str(tmp_path / "src"), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "instance-paired" in proc.stdout and "[real features]" in proc.stdout
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["provenance"]["source_format"] == "MATLAB v7.3 (HDF5)"
    assert manifest["modalities"]["image"]["counts"] == {"train": 8, "val": 4, "test": 5}


def test_dataset_names_and_shapes_have_one_source():
    from cvs_tf.cli.data import build_parser
    from cvs_tf.data.benchmarks import DATASET_SPECS
    from cvs_tf.data.converters import CONVERTERS, cub, xmedia
    from cvs_tf.data.registry import SYNTH_NAMES

    assert SYNTH_NAMES == tuple(DATASET_SPECS) and set(DATASET_SPECS) < set(CONVERTERS)   # wikipedia: no stand-in
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices
    choices = {n: next(a.choices for a in sub[n]._actions if a.dest == "name") for n in ("synth", "convert")}
    assert tuple(choices["synth"]) == SYNTH_NAMES and tuple(choices["convert"]) == tuple(CONVERTERS)
    spec = DATASET_SPECS["xmedia"]
    assert xmedia.EXPECTED_COUNTS["audio"] == (spec.modalities["audio"].train, spec.modalities["audio"].test)
    assert cub.EXPECTED_SPLIT == (150, 50) and cub.EXPECTED_CLASSES == 200


@pytest.mark.parametrize("name, says", [("wikipedia", ["convert wikipedia"]), ("pascal", ["synth pascal", "convert pascal"]),
                                        ("nosuchset", [])])
def test_an_unknown_name_says_how_to_make_it(name, says, tmp_path, monkeypatch):
    from cvs_tf.data.registry import dataset_path

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CVS_TF_DATA", raising=False)
    with pytest.raises(FeatureSetError) as err:
        dataset_path(name)
    msg = str(err.value)
    assert all(f"python -m cvs_tf.data {s}" in msg for s in says) and ("cvs_tf.data" in msg) == bool(says)
