"""Convert Pascal Sentence and NUS-WIDE in the DSCMR layout (six .mat files, instance-paired) to a feature set.

``SRC`` is a directory holding six files (MATLAB v5 or v7.3); each file's variable is named
after the file's stem::

    train_img.mat      train_img      (N_tr, d_img)   image features (VGG19 fc7, 4096-d)
    test_img.mat       test_img       (N_te, d_img)
    train_txt.mat      train_txt      (N_tr, d_txt)   text features (300-d)
    test_txt.mat       test_txt       (N_te, d_txt)
    train_img_lab.mat  train_img_lab  (N_tr, 1)       0-based class ids, shared by the pair
    test_img_lab.mat   test_img_lab   (N_te, 1)

Row ``i`` of the image and text files is the same item. With ``multi_label=True`` (NUS-WIDE's
multi-label option) the label files hold ``(N, C)`` 0/1 multi-hot arrays instead and the set is
written with ``label_kind="multi"``. More classes than the documented 20 (a label of 20 or more,
or more than 20 multi-hot columns) is an error unless ``allow_extra_classes`` is given.
"""

from __future__ import annotations

from pathlib import Path

from cvs_tf.data.benchmarks import DATASET_SPECS, expected_counts, expected_dims
from cvs_tf.data.converters import common, offering
from cvs_tf.data.converters.matfile import MatFile
from cvs_tf.data.store import FeatureSetError

VERSION = "1"
LABEL_BASE = 0
STEMS = ("train_img", "test_img", "train_txt", "test_txt", "train_img_lab", "test_img_lab")
EXPECTED = {  # thesis Table 3 counts, design.md class counts
    n: {"counts": expected_counts(n)["image"], "classes": DATASET_SPECS[n].classes} for n in ("pascal", "nuswide")
}
EXPECTED_DIMS = expected_dims("pascal")


def _open(src: Path, stem: str) -> MatFile:
    path = src / f"{stem}.mat"
    if not path.is_file():
        raise FeatureSetError(f"{path}: {stem}: file not found (DSCMR layout needs {', '.join(s + '.mat' for s in STEMS)})")
    return MatFile(path)


def read(src: str | Path, *, name: str = "pascal", multi_label: bool = False, allow_extra_classes: bool = False,
         **_options) -> common.Conversion:
    """Read and validate a DSCMR-layout directory (see the module docstring)."""
    src = Path(src)
    if not src.is_dir():
        raise FeatureSetError(f"{src}: directory: not found (the DSCMR layout is a directory of six .mat files)")
    if multi_label and name not in offering("multi_label"):
        raise FeatureSetError(f"{src}: multi_label: only NUS-WIDE has a multi-label option")
    files = {stem: _open(src, stem) for stem in STEMS}
    splits: dict = {"image": {}, "text": {}}
    for split in ("train", "test"):
        img, txt, lab = (files[f"{split}_{k}"] for k in ("img", "txt", "img_lab"))
        dim_i = splits["image"]["train"][0].shape[1] if split == "test" else None
        dim_t = splits["text"]["train"][0].shape[1] if split == "test" else None
        xi = img.features(f"{split}_img", dim=dim_i)
        xt = txt.features(f"{split}_txt", dim=dim_t)
        if len(xt) != len(xi):
            raise FeatureSetError(
                f"{txt.path}: {split}_txt: wrong shape {xt.shape}: {len(xt)} rows but {split}_img has {len(xi)} "
                "(image and text rows must be paired)"
            )
        if multi_label:
            y = lab.multi_hot(f"{split}_img_lab", rows=len(xi), rows_from=f"{split}_img")
        else:
            y = lab.labels(f"{split}_img_lab", base=LABEL_BASE, rows=len(xi), rows_from=f"{split}_img")
        splits["image"][split] = (xi, y)
        splits["text"][split] = (xt, y)
    ytr, yte = splits["image"]["train"][1], splits["image"]["test"][1]
    if multi_label:
        if ytr.shape[1] != yte.shape[1]:
            raise FeatureSetError(
                f"{files['test_img_lab'].path}: test_img_lab: wrong shape {yte.shape}: "
                f"{yte.shape[1]} classes but train_img_lab has {ytr.shape[1]}"
            )
        n_classes = ytr.shape[1]
        where, found = f"{files['train_img_lab'].path}: train_img_lab", f"{n_classes} multi-hot label columns"
    else:
        top, where = common.largest_label({f"{files[f'{s}_img_lab'].path}: {s}_img_lab": y
                                           for s, y in (("train", ytr), ("test", yte))})
        n_classes, found = top + 1, f"labels out of range: found {top + LABEL_BASE}"
    versions = ", ".join(sorted({f.version for f in files.values()}))
    notes = [f"read {len(STEMS)} DSCMR files ({versions}), instance-paired, "
             f"{'multi-hot' if multi_label else '0-based single'} labels"]
    exp = EXPECTED.get(name, {"counts": None, "classes": None})
    notes += common.check_class_count(n_classes, exp["classes"], dataset={"pascal": "Pascal Sentence"}.get(name, "NUS-WIDE"),
                                      where=where, found=found, n_items=len(ytr) + len(yte), allow_extra=allow_extra_classes)
    notes += common.found_notes(splits, n_classes, counts={m: exp["counts"] for m in splits} if exp["counts"] else {},
                                table="thesis Table 3", dims=EXPECTED_DIMS, dim_source="DSCMR dim",
                                expected_classes=exp["classes"], dataset=f"design.md's {name}", paired=True)
    if multi_label:
        for split, y in (("train", ytr), ("test", yte)):
            empty = int((y.sum(1) == 0).sum())
            notes.append(f"{split}: {y.sum(1).mean():.2f} labels per item on average"
                         + (f", {empty} items without any label" if empty else ""))
    return common.Conversion(
        name=name, splits=splits, classes=common.class_names(n_classes, LABEL_BASE), pairing="instance",
        converter=__name__, version=VERSION, sources=[f.path for f in files.values()],
        source_format=versions, label_kind="multi" if multi_label else "single",
        label_base=None if multi_label else LABEL_BASE, notes=notes, source_root=src,
    )
