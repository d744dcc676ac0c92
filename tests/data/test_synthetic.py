"""Synthetic stand-ins: published shapes, scaled counts, byte-identical determinism, pairing, zero-shot, weak audio."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cvs_tf.data.synthetic as synthetic
from cvs_tf.cli.data import main
from cvs_tf.data.registry import SYNTH_NAMES
from cvs_tf.data.store import FeatureSetError, load_feature_set, sha256_file
from cvs_tf.data.synthetic import DATASET_SPECS, make_synthetic, scaled_counts, write_synthetic
from cvs_tf.utils.cli import run_cli

REPO = Path(__file__).resolve().parents[2]

# (dim, train, test) per modality, classes, pairing: design.md §7 / thesis Tables 1 and 3
PUBLISHED = {
    "xmedia": ({"image": (4096, 4000, 1000), "text": (3000, 4000, 1000), "audio": (29, 800, 200),
                "video": (4096, 400, 100), "3d": (4700, 400, 100)}, 20, "class"),
    "xmedianet": ({"image": (4096, 32000, 8000), "text": (3000, 32000, 8000), "video": (4096, 8000, 2000),
                   "audio": (29, 8000, 2000), "3d": (4700, 1600, 400)}, 200, "class"),
    "pascal": ({"image": (4096, 800, 200), "text": (300, 800, 200)}, 20, "instance"),
    "nuswide": ({"image": (4096, 8000, 2000), "text": (300, 8000, 2000)}, 20, "instance"),
    "cub": ({"image": (2048, 8855, 2933), "text": (1024, 8855, 2933)}, 200, "instance"),
}


def test_specs_match_the_published_tables():
    assert tuple(DATASET_SPECS) == SYNTH_NAMES
    for name, (mods, classes, pairing) in PUBLISHED.items():
        spec = DATASET_SPECS[name]
        assert {m: (s.dim, s.train, s.test) for m, s in spec.modalities.items()} == mods
        assert (spec.classes, spec.pairing) == (classes, pairing)
    assert DATASET_SPECS["cub"].seen == 150
    assert scaled_counts("xmedianet", 1.0)["3d"] == (1600, 400)


def test_scaled_counts_by_hand():
    # round(n * 0.05), at least 2 train items and 1 test item per class (20 classes)
    assert scaled_counts("xmedia", 0.05) == {
        "image": (200, 50), "text": (200, 50), "audio": (40, 20), "video": (40, 20), "3d": (40, 20)}
    # cub: train over 150 seen classes (>= 300), test over 50 unseen (>= 50)
    assert scaled_counts("cub", 0.01) == {"image": (300, 50), "text": (300, 50)}
    assert scaled_counts("pascal", 0.5) == {"image": (400, 100), "text": (400, 100)}
    for bad in (0, -1, 1.5):
        with pytest.raises(FeatureSetError, match="scale"):
            scaled_counts("xmedia", bad)
    with pytest.raises(FeatureSetError, match="no synthetic stand-in"):
        scaled_counts("mnist", 1.0)


def test_acceptance_synth_then_inspect_xmedia_subprocess(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "cvs_tf.data", *args], capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=120)

    made = run("synth", "xmedia", "--scale", "0.05", "--out", "X")
    assert made.returncode == 0, made.stderr
    shown = run("inspect", "X")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "modalities  5" in out and "classes     20 (single-label)" in out
    assert "[synthetic stand-in]" in out and "class-aligned" in out
    rows = {ln.split()[0]: ln.split()[1:] for ln in out.splitlines() if ln.startswith("  ")}
    # train+val = scaled train; val: 10% per class, at least 1 (audio/video/3d have 2 per class)
    assert rows["image"] == ["4096", "180", "20", "50"]
    assert rows["text"] == ["3000", "180", "20", "50"]
    assert rows["audio"] == ["29", "20", "20", "20"]
    assert rows["video"] == ["4096", "20", "20", "20"]
    assert rows["3d"] == ["4700", "20", "20", "20"]


def test_same_seed_is_byte_identical_other_seed_is_not(tmp_path):
    def hashes(out):
        return {p.name: sha256_file(p) for p in sorted(Path(out).iterdir())}

    a = hashes(write_synthetic("xmedia", tmp_path / "a", 0.02, seed=5))
    b = hashes(write_synthetic("xmedia", tmp_path / "b", 0.02, seed=5))
    c = hashes(write_synthetic("xmedia", tmp_path / "c", 0.02, seed=6))
    assert a == b and len(a) == 1 + 5 * 3 * 2
    assert all(a[f] != c[f] for f in a if f.endswith(".x.npy"))


def test_manifest_says_synthetic_and_records_the_generator(tmp_path):
    fs = load_feature_set(write_synthetic("pascal", tmp_path / "p", 0.1, seed=2))
    prov = fs.manifest["provenance"]
    assert fs.synthetic and fs.data_label == "synthetic stand-in"
    assert prov["generator"] == "cvs_tf.data.synthetic" and prov["seed"] == 2 and prov["scale"] == 0.1
    assert "synthetic stand-in" in prov["note"]
    assert fs.manifest["validation"] == {"fraction": 0.1, "seed": 2, "stratified": True, "carved_from": "train"}


def test_labels_are_balanced_and_features_float32():
    data = make_synthetic("xmedia", 0.05)["data"]
    y = np.concatenate([data["image"]["train"][1], data["image"]["val"][1]])
    assert np.bincount(y, minlength=20).tolist() == [10] * 20  # 200 items over 20 classes
    # 50 test items over 20 classes: classes 0-9 get 3, classes 10-19 get 2
    assert np.bincount(data["image"]["test"][1], minlength=20).tolist() == [3] * 10 + [2] * 10
    for per in data.values():
        for x, _ in per.values():
            assert x.dtype == np.float32 and np.isfinite(x).all()
    assert data["image"]["train"][0].min() == 0.0  # CNN-like image features are non-negative (ReLU)


def test_instance_paired_sets_share_labels_and_class_aligned_ones_do_not():
    pascal = make_synthetic("pascal", 0.1)["data"]
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(pascal["image"][split][1], pascal["text"][split][1])
    xmedia = make_synthetic("xmedia", 0.05)["data"]
    assert not np.array_equal(xmedia["image"]["train"][1], xmedia["text"]["train"][1])


def test_cub_zero_shot_split(tmp_path):
    fs = load_feature_set(write_synthetic("cub", tmp_path / "cub", 0.01))
    zs = fs.manifest["zero_shot"]
    assert zs["seen"] == list(range(150)) and zs["unseen"] == list(range(150, 200))
    for split in ("train", "val"):
        assert fs.y("image", split).max() < 150
    assert fs.y("image", "test").min() >= 150 and len(np.unique(fs.y("image", "test"))) == 50
    assert fs.count("image", "train") + fs.count("image", "val") == 300


def test_nuswide_multi_label(tmp_path):
    fs = load_feature_set(write_synthetic("nuswide", tmp_path / "n", 0.05, multi_label=True))
    y = np.asarray(fs.y("image", "train"))
    assert fs.label_kind == "multi" and y.shape[1] == 20 and y.dtype == np.uint8
    per_item = y.sum(1)
    assert per_item.min() == 1 and per_item.max() == 3  # primary + 0, 1 or 2 others
    assert 1.5 < per_item.mean() < 1.9  # expected 1 + 0.3 + 0.4 = 1.7
    with pytest.raises(FeatureSetError, match="multi_label"):
        make_synthetic("pascal", 0.1, multi_label=True)


def test_chunked_generation_matches_shapes(monkeypatch):
    monkeypatch.setattr(synthetic, "CHUNK", 7)
    data = make_synthetic("pascal", 0.1)["data"]
    x = data["image"]["train"][0]
    # 80 train items, 4 per class; validation takes max(1, round(0.4)) = 1 per class -> 60 left
    assert x.shape == (60, 4096) and np.isfinite(x).all()
    assert len({r.tobytes() for r in x}) == len(x)  # no chunk repeated another's rows


def _nearest_centroid_accuracy(per, n_classes):
    xtr, ytr = per["train"]
    xte, yte = per["test"]
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    cent = np.stack([((xtr[ytr == c] - mu) / sd).mean(0) for c in range(n_classes)])
    q = (xte - mu) / sd
    sims = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (cent / np.linalg.norm(cent, axis=1, keepdims=True)).T
    return float((sims.argmax(1) == yte).mean())


def test_audio_is_the_weakest_modality_and_image_text_the_strongest():
    data = make_synthetic("xmedia", 0.25, seed=0)["data"]
    acc = {m: _nearest_centroid_accuracy(per, 20) for m, per in data.items()}
    assert min(acc["image"], acc["text"]) > 0.7
    assert min(acc["image"], acc["text"]) > max(acc["video"], acc["3d"]) > acc["audio"]
    assert acc["audio"] > 0.05  # still above chance (1/20)


@pytest.mark.parametrize("argv, fragment", [
    (["synth", "xmedia", "--scale", "0", "--out", "o"], "--scale: must be in (0, 1]"),
    (["synth", "xmedia", "--scale", "abc", "--out", "o"], "--scale: not a number"),
    (["synth", "xmedia", "--multi-label", "--out", "o"], "--multi-label: only nuswide"),
    (["synth", "mnist", "--out", "o"], "invalid choice: 'mnist'"),
    (["synth", "xmedia"], "the following arguments are required: --out"),
])
def test_synth_bad_arguments_exit_2_with_one_line(tmp_path, capsys, monkeypatch, argv, fragment):
    monkeypatch.chdir(tmp_path)
    assert run_cli(main, argv) == 2
    out, err = capsys.readouterr()
    assert err.startswith("error: ") and err.count("\n") == 1 and fragment in err
    assert not (tmp_path / "o").exists()


def test_synth_refuses_an_existing_output(tmp_path, capsys):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "keep.txt").write_text("mine")
    assert run_cli(main, ["synth", "pascal", "--scale", "0.05", "--out", str(tmp_path / "o")]) == 2
    assert "output directory already exists" in capsys.readouterr().err
    assert (tmp_path / "o" / "keep.txt").read_text() == "mine"


@pytest.mark.slow
def test_full_size_xmedia(tmp_path):
    fs = load_feature_set(write_synthetic("xmedia", tmp_path / "x"))
    assert {m: fs.count(m, "train") + fs.count(m, "val") for m in fs.modalities} == {
        "image": 4000, "text": 4000, "audio": 800, "video": 400, "3d": 400}
    assert {m: fs.count(m, "test") for m in fs.modalities} == {
        "image": 1000, "text": 1000, "audio": 200, "video": 100, "3d": 100}
