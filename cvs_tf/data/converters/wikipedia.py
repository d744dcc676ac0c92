"""Convert the Wikipedia image-text set (Rasiwasia et al. 2010: raw_features.mat + .list files) to a feature set.

``SRC`` is the directory (or its ``raw_features.mat``) holding::

    raw_features.mat             I_tr (N_tr, 128) / I_te (N_te, 128)  SIFT bag of visual words
                                 T_tr (N_tr, 10)  / T_te (N_te, 10)   LDA topic proportions
    trainset_txt_img_cat.list    N_tr lines "text id<TAB>image id<TAB>category", category 1-based
    testset_txt_img_cat.list     N_te lines, same format
    categories.list              optional: one category name per line, in label order

Line ``i`` of a .list file describes feature row ``i`` of both I and T (instance-paired). The
published split is 2173 / 693 pairs in 10 categories; more categories (a category above 10, or
more than 10 names in ``categories.list``) is an error unless ``allow_extra_classes`` is given.
The text and image ids are kept in the manifest under ``item_ids`` (per stored split, in stored
row order).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cvs_tf.data.converters import common
from cvs_tf.data.converters.matfile import MatFile, to_class_ids
from cvs_tf.data.store import FeatureSetError

VERSION = "1"
FILE = "raw_features.mat"
LISTS = {"train": "trainset_txt_img_cat.list", "test": "testset_txt_img_cat.list"}
CATEGORIES = "categories.list"
LABEL_BASE = 1
EXPECTED_COUNTS = {"image": (2173, 693), "text": (2173, 693)}
EXPECTED_DIMS = {"image": 128, "text": 10}
EXPECTED_CLASSES = 10


def read_list(path: Path) -> tuple[list[str], list[str], list[int]]:
    """Text ids, image ids and raw (1-based) categories of one ``*_txt_img_cat.list`` file."""
    if not path.is_file():
        raise FeatureSetError(f"{path}: file: file not found")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise FeatureSetError(f"{path}: text: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    txt, img, cat = [], [], []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) != 3:
            fields = line.split()
        if len(fields) != 3:
            raise FeatureSetError(
                f"{path}: line {n}: expected 3 tab-separated fields (text id, image id, category), got {len(fields)}"
            )
        try:
            c = int(fields[2])
        except ValueError:
            raise FeatureSetError(f"{path}: line {n}: category {fields[2]!r} is not an integer") from None
        txt.append(fields[0])
        img.append(fields[1])
        cat.append(c)
    return txt, img, cat


def read(src: str | Path, *, name: str = "wikipedia", allow_extra_classes: bool = False, **_options) -> common.Conversion:
    """Read and validate the Wikipedia files (see the module docstring)."""
    src = Path(src)
    root = src if src.is_dir() else src.parent
    path = src / FILE if src.is_dir() else src
    if not path.is_file():
        raise FeatureSetError(f"{path}: file: file not found")
    mat = MatFile(path)
    names = None
    cat_path = root / CATEGORIES
    if cat_path.is_file():
        names = [ln.strip() for ln in cat_path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    splits: dict = {"image": {}, "text": {}}
    ids: dict = {"text_id": {}, "image_id": {}}
    sources = [path]
    for split, suffix in (("train", "tr"), ("test", "te")):
        xi = mat.features(f"I_{suffix}", dim=splits["image"]["train"][0].shape[1] if split == "test" else None)
        xt = mat.features(f"T_{suffix}", dim=splits["text"]["train"][0].shape[1] if split == "test" else None)
        if len(xt) != len(xi):
            raise FeatureSetError(f"{path}: T_{suffix}: wrong shape {xt.shape}: {len(xt)} rows but I_{suffix} has {len(xi)}")
        lpath = root / LISTS[split]
        txt, img, cat = read_list(lpath)
        sources.append(lpath)
        if len(cat) != len(xi):
            raise FeatureSetError(f"{lpath}: rows: {len(cat)} lines but I_{suffix} has {len(xi)} feature rows")
        y = to_class_ids(lpath, "category", np.asarray(cat), LABEL_BASE)
        if names is not None and len(y) and y.max() >= len(names):
            raise FeatureSetError(
                f"{lpath}: category: labels out of range: found {int(y.max()) + LABEL_BASE}, "
                f"{CATEGORIES} names {len(names)} categories"
            )
        splits["image"][split] = (xi, y)
        splits["text"][split] = (xt, y)
        ids["text_id"][split], ids["image_id"][split] = txt, img
    n_items = sum(len(splits["image"][s][1]) for s in ("train", "test"))
    if names is not None:
        sources.append(cat_path)
        n_classes, where, found = len(names), f"{cat_path}: categories", f"{len(names)} category names"
    else:
        top, where = common.largest_label({f"{root / LISTS[s]}: category": splits["image"][s][1] for s in ("train", "test")})
        n_classes, found = top + 1, f"labels out of range: found {top + LABEL_BASE}"
    extra_note = common.check_class_count(n_classes, EXPECTED_CLASSES, dataset="Wikipedia", where=where, found=found,
                                          n_items=n_items, allow_extra=allow_extra_classes)
    classes = names if names is not None else common.class_names(n_classes, LABEL_BASE)
    notes = [f"read {path.name} ({mat.version}) and the two .list files, instance-paired, 1-based categories"]
    notes += extra_note
    notes += common.found_notes(splits, n_classes, counts=EXPECTED_COUNTS, table="the published split",
                                dims=EXPECTED_DIMS, dim_source="published dim", expected_classes=EXPECTED_CLASSES,
                                dataset="the published set", paired=True)
    return common.Conversion(
        name=name, splits=splits, classes=classes, pairing="instance", converter=__name__,
        version=VERSION, sources=sources, source_format=mat.version, label_base=LABEL_BASE,
        notes=notes, row_ids=ids, source_root=root,
    )
