"""Digits-10 builder: clip and word discovery on fake package trees, the class-paired set (stub extractors), bad input."""


import numpy as np
import pytest

from cvs_tf.data.store import load_feature_set
from cvs_tf.utils.cli import CliError, run_cli
from data_prep import digits10
from data_prep.tuxdigits_common import system_version
from tests.data_prep.stubs import StubExtractors


def _touch(path, text="x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def make_sources(root, voices=2):
    math = root / digits10.MATH_DIR
    for d in range(10):
        for name in (f"{d}.ogg", f"{d}_fr.ogg", f"{d}_en_GB.ogg", f"{d}_desc_ro.ogg", f"{d}.png"):
            _touch(math / name)
        _touch(math / f"{d}.txt", f"Number {d}.\nfr.utf8=Nombre {d}.\nes.utf8=Num {d}.\ngl.utf8=Num {d}.\n"
                                  "ca@valencia.utf8=\n")
    _touch(math / "operators" / "op0_plus_desc_fr.ogg")
    for _package, folder, *_ in digits10.VOICES[:voices]:
        for d in range(10):
            _touch(root / folder / f"{d}.wav")
            _touch(root / folder / f"{d}.gsm")
    return root


def test_math_clips_and_words(tmp_path):
    root = make_sources(tmp_path / "src")
    math = root / digits10.MATH_DIR
    clips = digits10.math_clips(math)
    assert len(clips) == 40 and {c.digit for c in clips} == set(range(10))
    assert [c.id.split("/")[-1] for c in clips if c.digit == 3] == ["3.ogg", "3_desc_ro.ogg", "3_en_GB.ogg", "3_fr.ogg"]
    words = digits10.math_words(math)
    # English first line, fr, es; gl repeats "Num 3." (kept once); the empty valencia line is skipped
    assert [(w.id, w.text) for w in words if w.digit == 3] == [("3/en", "Number 3."), ("3/fr", "Nombre 3."),
                                                               ("3/es", "Num 3.")]


def test_asterisk_clips_prefer_wav_and_need_every_digit(tmp_path):
    root = make_sources(tmp_path / "src", voices=1)
    package, folder = digits10.VOICES[0][:2]
    clips = digits10.asterisk_clips(package, root / folder)
    assert [c.path.name for c in clips] == [f"{d}.wav" for d in range(10)]
    assert clips[4].id == f"asterisk:{package}:4.wav"
    (root / folder / "7.wav").unlink()
    assert digits10.asterisk_clips(package, root / folder)[7].path.name == "7.gsm"
    (root / folder / "7.gsm").unlink()
    with pytest.raises(CliError, match="no recording of digit 7"):
        digits10.asterisk_clips(package, root / folder)


def _build(tmp_path, out, extra=()):
    root = tmp_path / "src"
    if not root.exists():
        make_sources(root)
    argv = ["--sources-dir", str(root), "--out", str(out), "--quiet", *extra]
    return run_cli(lambda a: digits10.main(a, make_extractors=StubExtractors), argv)


def test_build_writes_a_class_paired_set(tmp_path):
    out = tmp_path / "digits"
    assert _build(tmp_path, out, ["--limit", "6"]) == 0
    fs = load_feature_set(out)
    assert fs.classes == [str(d) for d in range(10)] and fs.manifest["pairing"] == "class"
    assert not fs.synthetic and fs.modalities == ["image", "text", "audio", "speech"]
    total = {m: sum(fs.count(m, s) for s in ("train", "val", "test")) for m in fs.modalities}
    # 6 images per digit; 4 Tux Paint + 2 voices = 6 clips per digit; 3 distinct words per digit
    assert total == {"image": 60, "text": 30, "audio": 60, "speech": 60}
    assert fs.count("image", "test") == 20 and fs.count("text", "test") == 10     # round(0.3 n) per class
    ids = fs.manifest["item_ids"]
    assert ids["speech"] == ids["audio"]                       # same clips, same split
    root = tmp_path / "src"
    clips, words = digits10.clips_and_words(root / digits10.MATH_DIR, [(v[0], root / v[1]) for v in digits10.VOICES[:2]], 6)
    source = {**{c.id: c.path for c in clips}, **{w.id: w.text for w in words}}
    for m in ("text", "speech", "audio"):
        for s in ("train", "val", "test"):
            want = np.stack([StubExtractors.feature(m, source[i]) for i in ids[m][s]]).astype(np.float32).astype(np.float16)
            np.testing.assert_array_equal(fs.x(m, s), want)
    # image rows are sklearn's digits / 16, labels match
    from sklearn.datasets import load_digits
    d = load_digits()
    rows = [int(i.split(":")[1]) for i in ids["image"]["test"]]
    np.testing.assert_array_equal(fs.x("image", "test"), (d.data[rows] / 16).astype(np.float16))
    np.testing.assert_array_equal(fs.y("image", "test"), d.target[rows])
    prov = fs.manifest["provenance"]
    assert prov["converter"] == "data_prep.digits10" and len(prov["voices"]) == 8
    assert set(prov["license"]) == {"image", "text", "speech"}


def test_missing_digit_words_and_debian_packages_fail_in_one_line(tmp_path, capsys):
    root = make_sources(tmp_path / "src")
    (root / digits10.MATH_DIR / "5.txt").unlink()
    assert _build(tmp_path, tmp_path / "x") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "5.txt" in err and not (tmp_path / "x").exists()
    if all(system_version(p) is None for p in digits10.PACKAGES):
        argv = ["--out", str(tmp_path / "y"), "--cache", str(tmp_path / "cache"), "--no-download", "--quiet"]
        assert run_cli(lambda a: digits10.main(a, make_extractors=StubExtractors), argv) == 2
        err = capsys.readouterr().err.strip()
        assert "apt-get install -y tuxpaint-stamps-default asterisk-core-sounds-en-wav" in err and "\n" not in err
        assert not (tmp_path / "y").exists()
