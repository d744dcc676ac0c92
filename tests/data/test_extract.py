"""``python -m cvs_tf.data extract``: manifests and folders of raw media to feature sets; per-file errors; resume after a kill."""

import json
from pathlib import Path

import numpy as np
import pytest

from cvs_tf.data.encoders import build_encoder
from cvs_tf.data.store import load_feature_set
from tests.data.cli_helpers import assert_one_error, data_cli
from tests.data.media import TINY_IMAGE, text_of, write_folder, write_manifest, write_wav
from tests.helpers import rows_by_id, run_killed


def test_a_csv_manifest_of_text_and_wav_becomes_a_set_of_the_encoders_features(tmp_path, capsys):
    spec = write_manifest(tmp_path, 12)
    code, out, err = data_cli(["extract", spec, "--out", tmp_path / "fs", "--quiet"], capsys)
    assert code == 0, err
    fs = load_feature_set(tmp_path / "fs")
    assert fs.modalities == ["text", "audio"] and fs.paired and fs.classes == ["blue", "green", "red"]
    assert sum(fs.count("text", s) for s in ("train", "val", "test")) == 12 and fs.count("text", "test") == 3
    prov = fs.manifest["provenance"]
    assert prov["converter"] == "cvs_tf.data.extract" and prov["encoders"]["text"]["encoder"] == "hashed"
    assert prov["encoders"]["audio"]["encoder"] == "mfcc" and prov["skipped"] == []
    text, audio = build_encoder("hashed"), build_encoder("mfcc")
    got_t, got_a = rows_by_id(fs, "text"), rows_by_id(fs, "audio")
    for i in (0, 5, 11):
        np.testing.assert_allclose(got_t[f"item{i:02d}"], text.encode([text_of(i)])[0], atol=1e-6)
        np.testing.assert_allclose(got_a[f"item{i:02d}"], audio.encode([audio.read(f"audio{i:02d}.wav", tmp_path)])[0],
                                   atol=1e-5)
    ids = fs.manifest["item_ids"]["id"]
    for s in ("train", "val", "test"):   # an item keeps its class in every split
        assert [fs.classes[c] for c in fs.y("text", s)] == [["red", "green", "blue"][int(i[-2:]) % 3] for i in ids[s]]


def test_a_manifest_of_meshes_gives_their_shape_descriptors(tmp_path, capsys):
    pytest.importorskip("trimesh")
    from cvs_tf.data.mesh import mesh_descriptors

    spec = write_manifest(tmp_path, 9, modalities=("text", "3d"))
    code, _, err = data_cli(["extract", spec, "--out", tmp_path / "fs", "--quiet"], capsys)
    assert code == 0, err
    fs = load_feature_set(tmp_path / "fs")
    assert fs.modalities == ["text", "3d"] and fs.dim("3d") == 105
    assert fs.manifest["provenance"]["encoders"]["3d"]["encoder"] == "shape-descriptors"
    rows = rows_by_id(fs, "3d")
    for i in (0, 4):
        np.testing.assert_array_equal(rows[f"item{i:02d}"], mesh_descriptors(tmp_path / f"3d{i:02d}.off"))


def test_a_json_manifest_with_splits_and_a_folder_layout(tmp_path, capsys):
    (tmp_path / "j").mkdir()
    spec = write_manifest(tmp_path / "j", 9, fmt="json", split=True)
    code, _, err = data_cli(["extract", spec, "--out", tmp_path / "fs1", "--quiet", "--val-fraction", "0"], capsys)
    assert code == 0, err
    fs = load_feature_set(tmp_path / "fs1")
    assert fs.manifest["item_ids"]["id"]["test"] == ["item06", "item07", "item08"]
    root = write_folder(tmp_path / "media", 9)
    code, out, err = data_cli(["extract", root, "--out", tmp_path / "fs2", "--quiet", "--encoder",
                               f"image={TINY_IMAGE}"], capsys)
    assert code == 0, err
    fs = load_feature_set(tmp_path / "fs2")
    assert fs.modalities == ["image", "text"] and fs.paired and fs.dim("image") == 6
    assert "red/item00" in rows_by_id(fs, "text")


def test_a_folder_whose_modalities_hold_different_items_is_paired_by_class(tmp_path, capsys):
    root = write_folder(tmp_path / "media", 9)
    (root / "text" / "red" / "item00.txt").rename(root / "text" / "red" / "other.txt")
    code, _, err = data_cli(["extract", root, "--out", tmp_path / "fs", "--quiet", "--encoder", f"image={TINY_IMAGE}"],
                            capsys)
    assert code == 0, err
    assert not load_feature_set(tmp_path / "fs").paired


def _break(tmp_path, kind):
    """A manifest of 9 items with one broken item of ``kind``; returns (spec, the broken item's id, file fragment)."""
    mods = {"image": ("image", "text"), "mesh": ("3d", "text")}.get(kind, ("text", "audio"))
    spec = write_manifest(tmp_path, 9, modalities=mods)
    rows = spec.read_text().splitlines()
    if kind == "image":
        (tmp_path / "image04.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
        return spec, "item04", "image04.png"
    if kind == "text":
        rows[5] = rows[5].replace(text_of(4), " ")
        spec.write_text("\n".join(rows) + "\n")
        return spec, "item04", "text"
    if kind == "silent":
        from scipy.io import wavfile

        wavfile.write(tmp_path / "audio04.wav", 8000, np.zeros(4000, np.int16))
        return spec, "item04", "audio04.wav"
    if kind == "truncated":
        data = write_wav(tmp_path / "audio04.wav", 4).read_bytes()
        (tmp_path / "audio04.wav").write_bytes(data[: len(data) // 2])
        return spec, "item04", "audio04.wav"
    (tmp_path / "3d04.off").write_text("OFF\n8 12 0\n0 0 0\n")
    return spec, "item04", "3d04.off"


REASONS = {"image": "cannot decode image", "text": "empty text", "silent": "silent audio",
           "truncated": "cannot read WAV", "mesh": "cannot read mesh"}


@pytest.mark.parametrize("kind", list(REASONS))
def test_a_bad_item_fails_naming_its_file_or_is_skipped_and_recorded(tmp_path, capsys, kind):
    if kind == "mesh":
        pytest.importorskip("trimesh")
    spec, item, where = _break(tmp_path, kind)
    extra = ["--encoder", f"image={TINY_IMAGE}"] if kind == "image" else []
    code, _, err = data_cli(["extract", spec, "--out", tmp_path / "fs", "--quiet", *extra], capsys)
    assert_one_error(code, err, where, item, REASONS[kind], "--on-error skip")
    assert not (tmp_path / "fs").exists()
    code, out, err = data_cli(["extract", spec, "--out", tmp_path / "fs", "--quiet", "--on-error", "skip", *extra],
                              capsys)
    assert code == 0, err
    assert "skipped" in out and where in out
    fs = load_feature_set(tmp_path / "fs")
    (skip,) = fs.manifest["provenance"]["skipped"]
    assert skip["id"] == item and REASONS[kind] in skip["reason"]
    kept = {i for s in ("train", "val", "test") for i in fs.manifest["item_ids"]["id"][s]}
    assert len(kept) == 8 and item not in kept          # dropped from every modality (instance-paired)
    assert not any(p.name.endswith("extract-partial") for p in tmp_path.iterdir())


def test_a_kill_mid_extraction_then_a_rerun_gives_the_uninterrupted_set(tmp_path, capsys):
    spec = write_manifest(tmp_path, 12)
    argv = ["extract", spec, "--out", tmp_path / "whole", "--quiet", "--batch-size", "4"]
    assert data_cli(argv, capsys)[0] == 0
    killed = tmp_path / "killed"
    run_killed(["cvs_tf.data", *argv[:3], killed, *argv[4:]], "extract-shard@4")
    partial = tmp_path / ".killed.extract-partial"
    assert not killed.exists() and sorted(p.name for p in (partial / "text").iterdir()) == [
        "batch-000000.npz", "batch-000001.npz", "batch-000002.npz"]
    code, out, err = data_cli([*argv[:3], killed, *argv[4:]], capsys)
    assert code == 0, err
    assert "resuming" in out and not partial.exists()
    a, b = (json.loads((p / "manifest.json").read_text()) for p in (tmp_path / "whole", killed))
    assert a["arrays"] == b["arrays"] and a["item_ids"] == b["item_ids"]


def test_bad_specs_are_one_error_line(tmp_path, capsys):
    spec = write_manifest(tmp_path, 6)
    text = spec.read_text()
    cases = [
        (text.replace("id,", "name,", 1), "id: missing column"),
        (text.replace("item01", "item00"), "appears twice"),
        (text.replace("class,", "kind,", 1), "class"),
    ]
    for body, needle in cases:
        spec.write_text(body)
        code, _, err = data_cli(["extract", spec, "--out", tmp_path / "fs", "--quiet"], capsys)
        assert_one_error(code, err, needle)
    spec.write_text(text)
    code, _, err = data_cli(["extract", spec, "--out", tmp_path / "fs", "--encoder", "smell=mfcc"], capsys)
    assert_one_error(code, err, "no modality 'smell'")
    code, _, err = data_cli(["extract", spec, "--out", tmp_path / "fs", "--encoder", "text=nope"], capsys)
    assert_one_error(code, err, "unknown encoder 'nope'")
    assert not (tmp_path / "fs").exists()
    (tmp_path / "fs").mkdir()
    code, _, err = data_cli(["extract", spec, "--out", tmp_path / "fs"], capsys)
    assert_one_error(code, err, "already exists")


@pytest.mark.slow
def test_the_seeded_random_keras_backbone_is_the_same_in_every_build():
    a, b = build_encoder("mobilenetv3small@none"), build_encoder("mobilenetv3small@none")
    assert a.info()["weights_sha256"] == b.info()["weights_sha256"] and a.dim == 576
    x = np.random.default_rng(0).integers(0, 255, (2, 224, 224, 3)).astype(np.uint8)
    np.testing.assert_allclose(a.encode(list(x)), b.encode(list(x)), atol=1e-6)


def test_a_spec_path_that_is_neither_manifest_nor_folder(tmp_path, capsys):
    p = Path(tmp_path / "spec.txt")
    p.write_text("hello")
    code, _, err = data_cli(["extract", p, "--out", tmp_path / "fs"], capsys)
    assert_one_error(code, err, "not a manifest")


@pytest.mark.parametrize("name,mod,mods", [("minilm", "text", ("text", "audio")),
                                          ("efficientnet-lite0", "image", ("image", "text")),
                                          ("whisper-base", "audio", ("text", "audio"))])
def test_an_offline_model_without_its_packages_is_one_line_naming_the_install(tmp_path, capsys, name, mod, mods):
    import importlib.util

    from cvs_tf.data.encoders.offline import NEEDS

    if all(importlib.util.find_spec(m) for m, _ in NEEDS[name]):
        pytest.skip(f"{name}'s packages are installed (tests/data/test_offline_encoders.py uses them)")
    spec = write_manifest(tmp_path, 6, modalities=mods)
    code, _, err = data_cli(["extract", spec, "--out", tmp_path / "fs", "--encoder", f"{mod}={name}"], capsys)
    assert_one_error(code, err, f"encoder {name} needs", "pip install -r requirements-dataprep.txt")
    assert not (tmp_path / "fs").exists() and not (tmp_path / ".fs.extract-partial").exists()
