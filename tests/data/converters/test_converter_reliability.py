"""Converters refuse corrupt input in one line and leave nothing behind (#12 cases 4, 10, 11; corrupt files of every layout)."""

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from cvs_tf.data.converters import convert
from cvs_tf.data.store import FeatureSetError, load_feature_set
from tests.data.cli_helpers import assert_one_error
from tests.data.cli_helpers import data_cli as cli
from tests.data.converters import layouts
from tests.data.temporaries import dead_pid, fake_temp


def assert_nothing_written(tmp_path):
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def rewrite_v5(path: Path, edit) -> None:
    """Load a v5 .mat file, let ``edit`` change its variables, write it back."""
    variables = {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    edit(variables)
    layouts.write_mat(path, variables, "v5")


# --------------------------------------------------------------------------- case 10: labels beyond the class range


def _labels_with(n, value, base=1):
    y = (np.arange(n) % 4 + base).astype(np.float64)[:, None]
    y[1] = value
    return y


def _wiki_lines(n, top):
    return [f"t{i}\ti{i}\t{top if i == 2 else i % 3 + 1}" for i in range(n)]


def _cub_with_classes(root, n_names):
    lay = layouts.cub(root)
    names = lay.extra["names"] + [f"{i + 1:03d}.Extra_{i}" for i in range(len(lay.extra["names"]), n_names)]
    (lay.src / "classes.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(names)))
    return lay


def _wiki_with_names(root, n_names):
    lay = layouts.wikipedia(root)
    (lay.src / "categories.list").write_text("".join(f"cat{i}\n" for i in range(n_names)))
    return lay


OUT_OF_RANGE = {
    "xmedia-99": ("xmedia", lambda r: layouts.xmedia(r, trImgCat=_labels_with(12, 99)),
                  "XMediaFeatures.mat: trImgCat: labels out of range: found 99, but XMedia has 20 classes"),
    "xmedia-1e7": ("xmedia", lambda r: layouts.xmedia(r, trVidCat=_labels_with(8, 1e7)),
                   "XMediaFeatures.mat: trVidCat: labels out of range: found 10000000, but XMedia has 20 classes"),
    "xmedianet": ("xmedianet", lambda r: layouts.xmedianet(r, I_labs=_labels_with(20, 250)),
                  "XMediaNetFeatures.mat: I_labs: labels out of range: found 250, but XMediaNet has 200 classes"),
    "pascal": ("pascal", lambda r: layouts.dscmr(r, test_img_lab=_labels_with(5, 20, base=0)),
               "test_img_lab.mat: test_img_lab: labels out of range: found 20, but Pascal Sentence has 20 classes"),
    "nuswide-multi": ("nuswide", lambda r: layouts.dscmr(r, multi_label=True, n_classes=21),
                      "train_img_lab.mat: train_img_lab: 21 multi-hot label columns, but NUS-WIDE has 20 classes"),
    "wikipedia-label": ("wikipedia", lambda r: layouts.wikipedia(r, categories=False, list_lines={"test": _wiki_lines(6, 11)}),
                        "testset_txt_img_cat.list: category: labels out of range: found 11, but Wikipedia has 10 classes"),
    "wikipedia-names": ("wikipedia", lambda r: _wiki_with_names(r, 11),
                        "categories.list: categories: 11 category names, but Wikipedia has 10 classes"),
    "cub": ("cub", lambda r: _cub_with_classes(r, 201), "classes.txt: classes: 201 class names, but CUB-200 has 200 classes"),
}


@pytest.mark.parametrize("case", list(OUT_OF_RANGE))
def test_labels_beyond_the_documented_classes_are_corrupt(tmp_path, capsys, case):
    name, build, fragment = OUT_OF_RANGE[case]
    lay = build(tmp_path / "src")
    options = ["--multi-label"] if case == "nuswide-multi" else []
    code, out, err = cli(["convert", name, lay.src, "--out", tmp_path / "out", *options], capsys)
    assert_one_error(code, err, fragment, "--allow-extra-classes")
    assert out == ""
    assert_nothing_written(tmp_path)


def test_allow_extra_classes_converts_a_variant_with_more_classes(tmp_path, capsys):
    lay = layouts.xmedia(tmp_path / "src", trImgCat=_labels_with(12, 30))
    code, out, err = cli(["convert", "xmedia", lay.src, "--out", tmp_path / "out", "--allow-extra-classes"], capsys)
    assert (code, err) == (0, "")
    assert "xmedia: 30 classes found; XMedia has 20 (allowed by --allow-extra-classes)" in out
    fs = load_feature_set(tmp_path / "out")
    assert fs.num_classes == 30 and fs.classes[-1] == "class30"
    assert any("allowed by --allow-extra-classes" in n for n in fs.manifest["provenance"]["notes"])


@pytest.mark.parametrize("case", ["xmedia-1e7", "cub"])
def test_even_allowed_extra_classes_may_not_outnumber_the_items(tmp_path, capsys, case):
    name, build, _ = OUT_OF_RANGE[case]
    lay = build(tmp_path / "src")
    code, _, err = cli(["convert", name, lay.src, "--out", tmp_path / "out", "--allow-extra-classes"], capsys)
    n_items = {"xmedia-1e7": 67, "cub": 28}[case]
    assert_one_error(code, err, f"classes for only {n_items} items (corrupt labels)")
    assert_nothing_written(tmp_path)


def test_fewer_classes_than_documented_is_only_a_note(tmp_path, capsys):
    lay = layouts.xmedia(tmp_path / "src")  # 4 classes
    code, out, err = cli(["convert", "xmedia", lay.src, "--out", tmp_path / "out"], capsys)
    assert (code, err) == (0, "") and "xmedia: 4 classes found; XMedia has 20" in out


def test_cub_class_ids_must_run_in_order(tmp_path, capsys):
    lay = layouts.cub(tmp_path / "src")
    lines = (lay.src / "classes.txt").read_text().splitlines()
    lines[2] = "7 " + lines[2].split()[1]
    (lay.src / "classes.txt").write_text("\n".join(lines) + "\n")
    code, _, err = cli(["convert", "cub", lay.src, "--out", tmp_path / "out"], capsys)
    assert_one_error(code, err, "classes.txt: line 3: class id '7' out of order (expected 3")
    assert_nothing_written(tmp_path)


# --------------------------------------------------------------------------- case 11: validation fraction


def test_val_fraction_zero_converts_a_set_without_validation_split(tmp_path, capsys):
    lay = layouts.dscmr(tmp_path / "src")
    code, out, err = cli(["convert", "pascal", lay.src, "--out", tmp_path / "out", "--val-fraction", "0"], capsys)
    assert (code, err) == (0, "")
    assert "validation  none (val fraction 0" in out
    fs = load_feature_set(tmp_path / "out")
    assert fs.manifest["validation"]["fraction"] == 0 and not fs.has_split("val")
    assert fs.count("image", "train") == 12 and fs.count("text", "val") == 0  # the whole source train split
    np.testing.assert_array_equal(np.sort(fs.y("image", "train")), np.sort(lay.expected["image"]["train"][1]))


@pytest.mark.parametrize("value", ["1", "1.5", "-0.1", "nan", "inf", "abc"])
def test_val_fraction_outside_0_1_is_one_line(tmp_path, capsys, value):
    lay = layouts.dscmr(tmp_path / "src")
    code, _, err = cli(["convert", "pascal", lay.src, "--out", tmp_path / "out", "--val-fraction", value], capsys)
    assert_one_error(code, err, "--val-fraction: ")
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("value", [1.5, -1.0, float("nan")])
def test_library_convert_refuses_bad_val_fractions(tmp_path, value):
    lay = layouts.dscmr(tmp_path / "src")
    with pytest.raises(FeatureSetError, match=r"val_fraction: must be in \[0, 1\)"):
        convert("pascal", lay.src, tmp_path / "out", val_fraction=value, report=None)
    assert_nothing_written(tmp_path)


# --------------------------------------------------------------------------- corrupt input, every converter


def _nan(x):
    x = np.array(x, dtype=np.float64)
    x[1, 1] = np.nan
    return x


def corrupt(name: str, kind: str, root: Path):
    """A layout of converter ``name`` with one defect of ``kind``; returns (src, fragments of the error)."""
    builder = layouts.BUILDERS[name]
    lay = builder(root)
    if name in ("pascal", "nuswide"):
        path, key = lay.src / "test_txt.mat", "test_txt"
    elif name == "cub":
        path, key = lay.files[-1], "txt"
    else:
        path = lay.files[0]
        key = {"xmedia": "V_te_CNN", "xmedianet": "A_te", "wikipedia": "T_te"}[name]
    if kind == "missing-key":
        rewrite_v5(path, lambda v: v.pop(key))
        return lay.src, [f"{path.name}: {key}: missing key"]
    if kind == "wrong-shape":
        rewrite_v5(path, lambda v: v.update({key: np.ones((2, 3, 4))}))
        return lay.src, [f"{path.name}: {key}: wrong shape (2, 3, 4)"]
    if kind == "nan":
        rewrite_v5(path, lambda v: v.update({key: _nan(v[key])}))
        return lay.src, [f"{path.name}: {key}: contains NaN or Inf (1 values; first at row 2, column 2)"]
    if kind == "text":
        rewrite_v5(path, lambda v: v.update({key: "not numbers"}))
        return lay.src, [f"{path.name}: {key}: not a numeric array"]
    if kind == "truncated":  # cut inside the largest variable (a cut between two would be a valid smaller file)
        data = path.read_bytes()
        pos, cuts = 128, []
        while pos < len(data):
            nbytes = int.from_bytes(data[pos + 4:pos + 8], "little")
            cuts.append((nbytes, pos + 8 + nbytes // 2))
            pos += 8 + nbytes + (-nbytes) % 8
        path.write_bytes(data[: max(cuts)[1]])
        return lay.src, [f"{path.name}: ", "truncated"]
    if kind == "empty-file":
        path.write_bytes(b"")
        return lay.src, [f"{path.name}: ", "truncated"]
    raise AssertionError(kind)


KINDS = ("missing-key", "wrong-shape", "nan", "text", "truncated", "empty-file")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(layouts.BUILDERS))
def test_corrupt_input_is_one_line_and_leaves_nothing(tmp_path, capsys, name, kind):
    src, fragments = corrupt(name, kind, tmp_path / "src")
    code, out, err = cli(["convert", name, src, "--out", tmp_path / "out"], capsys)
    assert_one_error(code, err, *fragments)
    assert out == ""
    assert_nothing_written(tmp_path)


# --------------------------------------------------------------------------- case 4: temporaries of dead writers


def test_convert_removes_what_a_killed_convert_left_behind(tmp_path, capsys):
    stale = fake_temp(tmp_path, "out", dead_pid())
    live = fake_temp(tmp_path, "out", os.getppid())
    lay = layouts.dscmr(tmp_path / "src")
    code, _, err = cli(["convert", "pascal", lay.src, "--out", tmp_path / "out"], capsys)
    assert (code, err) == (0, "")
    assert not stale.exists() and live.is_dir()


# --------------------------------------------------------------------------- further corrupt values found while testing


@pytest.mark.parametrize("over, fragment", [
    ({"trImgCat": _labels_with(12, 1e300)}, "trImgCat: labels out of range: found 1e+300"),
    ({"V_te_CNN": np.zeros((0, 11)), "teVidCat": np.zeros((0, 1))}, "V_te_CNN: wrong shape (0, 11): no items"),
    ({"A_tr": np.zeros((0, 5)), "trAudCat": np.zeros((0, 1))}, "A_tr: wrong shape (0, 5): no items"),
    ({"A_tr": np.zeros((8, 0)), "A_te": np.zeros((4, 0))}, "A_tr: wrong shape (8, 0): no feature columns"),
])
def test_huge_labels_and_empty_splits_name_the_key(tmp_path, capsys, over, fragment):
    lay = layouts.xmedia(tmp_path / "src", **over)
    code, _, err = cli(["convert", "xmedia", lay.src, "--out", tmp_path / "out", "--allow-extra-classes"], capsys)
    assert_one_error(code, err, f"XMediaFeatures.mat: {fragment}")
    assert "Warning" not in err
    assert_nothing_written(tmp_path)


def test_a_cub_class_file_without_rows_is_still_only_a_note(tmp_path, capsys):
    lay = layouts.cub(tmp_path / "src")
    empty = lay.files[0]
    layouts.write_mat(empty, {"img": np.zeros((0, 14)), "txt": np.zeros((0, 8))})
    code, out, err = cli(["convert", "cub", lay.src, "--out", tmp_path / "out"], capsys)
    assert (code, err) == (0, "") and "class files hold no rows" in out
