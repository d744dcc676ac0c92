"""Convert CUB-200 image+text features in per-class files, with the zero-shot 150 seen / 50 unseen split, to a feature set.

CUB has no single official feature file, so this converter accepts one documented layout
(class names and split files as in Reed et al. 2016, "Learning deep representations of
fine-grained visual descriptions")::

    SRC/
      trainvalclasses.txt     seen classes, one name per line (e.g. 001.Black_footed_Albatross)
      testclasses.txt         unseen classes, one name per line
      classes.txt             optional: CUB_200_2011's "<id> <name>" lines; fixes the class order
                              (without it the order is the sorted union of the two lists)
      features/<name>.mat     one file per class (MATLAB v5 or v7.3) with
                                img  (n_c, d_img)  image features
                                txt  (n_c, d_txt)  text features; row i of img and txt is one image

Items are instance-paired. More than 200 classes is an error unless ``allow_extra_classes`` is
given; the ids of ``classes.txt`` must run 1, 2, ... in file order. Seen classes give train (and
the validation carve-out), unseen classes give test; the split is stored in the manifest as
``zero_shot = {"seen": [class ids], "unseen": [class ids]}`` (0-based ids into ``classes``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cvs_tf.data.benchmarks import DATASET_SPECS, expected_counts
from cvs_tf.data.converters import common
from cvs_tf.data.converters.matfile import MatFile
from cvs_tf.data.store import FeatureSetError

VERSION = "1"
SEEN, UNSEEN, CLASSES = "trainvalclasses.txt", "testclasses.txt", "classes.txt"
FEATURES = "features"
SPEC = DATASET_SPECS["cub"]
EXPECTED_SPLIT = (SPEC.seen, SPEC.classes - SPEC.seen)
EXPECTED_CLASSES = SPEC.classes
EXPECTED_COUNTS = expected_counts("cub")  # Reed et al. seen / unseen images


def _names(path: Path, what: str) -> list[str]:
    if not path.is_file():
        raise FeatureSetError(f"{path}: {what}: file not found")
    names, seen = [], set()
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        name = line.strip()
        if not name:
            continue
        if what == "classes":  # "<id> <name>", ids 1, 2, ... in order
            parts = name.split()
            if len(parts) != 2:
                raise FeatureSetError(f"{path}: line {n}: expected '<id> <name>', got {name!r}")
            if parts[0] != str(len(names) + 1):
                raise FeatureSetError(f"{path}: line {n}: class id {parts[0]!r} out of order (expected {len(names) + 1}: "
                                      "ids run 1, 2, ... in file order)")
            name = parts[1]
        if name in seen:
            raise FeatureSetError(f"{path}: line {n}: class {name!r} listed twice")
        seen.add(name)
        names.append(name)
    if not names:
        raise FeatureSetError(f"{path}: {what}: no class names")
    return names


def _class_lists(src: Path) -> tuple[list[str], list[str], list[str], list[Path]]:
    """Seen and unseen class names, every class in label order, and the list files read."""
    seen = _names(src / SEEN, "seen classes")
    unseen = _names(src / UNSEEN, "unseen classes")
    both = sorted(set(seen) & set(unseen))
    if both:
        raise FeatureSetError(f"{src / UNSEEN}: {both[0]}: class is also listed as seen in {SEEN}")
    sources = [src / SEEN, src / UNSEEN]
    if not (src / CLASSES).is_file():
        return seen, unseen, sorted(seen + unseen), sources
    classes = _names(src / CLASSES, "classes")
    unknown = [c for c in seen + unseen if c not in set(classes)]
    if unknown:
        raise FeatureSetError(f"{src / CLASSES}: {unknown[0]}: class of the split lists is not in {CLASSES}")
    return seen, unseen, classes, sources + [src / CLASSES]


def _read_classes(src: Path, groups: dict[str, list[str]], index: dict[str, int]):
    """Features of every class file: (splits, labels per class file, files read, MATLAB versions)."""
    dims: dict[str, int | None] = {"img": None, "txt": None}
    parts: dict = {s: {"img": [], "txt": [], "y": []} for s in groups}
    sources, version = [], set()
    for split, group in groups.items():
        for cname in group:
            path = src / FEATURES / f"{cname}.mat"
            if not path.is_file():
                raise FeatureSetError(f"{path}: img: file not found (one features/<class>.mat per class)")
            mat = MatFile(path)
            xi = mat.features("img", dim=dims["img"], min_rows=0)  # a class without images is allowed (noted)
            xt = mat.features("txt", dim=dims["txt"], min_rows=0)
            if len(xt) != len(xi):
                raise FeatureSetError(f"{path}: txt: wrong shape {xt.shape}: {len(xt)} rows but img has {len(xi)}")
            dims["img"], dims["txt"] = xi.shape[1], xt.shape[1]
            parts[split]["img"].append(xi)
            parts[split]["txt"].append(xt)
            parts[split]["y"].append(np.full(len(xi), index[cname], dtype=np.int64))
            sources.append(path)
            version.add(mat.version)
    splits: dict = {"image": {}, "text": {}}
    for split in groups:
        y = np.concatenate(parts[split]["y"])
        splits["image"][split] = (np.concatenate(parts[split]["img"]), y)
        splits["text"][split] = (np.concatenate(parts[split]["txt"]), y)
    return splits, [y for s in groups for y in parts[s]["y"]], sources, version


def read(src: str | Path, *, name: str = "cub", allow_extra_classes: bool = False, **_options) -> common.Conversion:
    """Read and validate a CUB per-class layout (see the module docstring)."""
    src = Path(src)
    if not src.is_dir():
        raise FeatureSetError(f"{src}: directory: not found (the CUB layout is a directory, see docs/data.md)")
    seen, unseen, classes, sources = _class_lists(src)
    index = {c: i for i, c in enumerate(classes)}
    splits, class_ys, files, version = _read_classes(src, {"train": seen, "test": unseen}, index)
    zero_shot = {"seen": sorted(index[c] for c in seen), "unseen": sorted(index[c] for c in unseen)}
    names_from = src / CLASSES if (src / CLASSES).is_file() else src / SEEN
    notes = [f"read {len(seen) + len(unseen)} per-class files ({', '.join(sorted(version))}); "
             f"zero-shot split {len(seen)} seen / {len(unseen)} unseen classes, instance-paired"]
    notes += common.check_class_count(len(classes), EXPECTED_CLASSES, dataset="CUB-200", where=f"{names_from}: classes",
                                      found=f"{len(classes)} class names",
                                      n_items=sum(len(splits["image"][s][1]) for s in ("train", "test")),
                                      allow_extra=allow_extra_classes)
    if (len(seen), len(unseen)) != EXPECTED_SPLIT:
        notes.append(f"the split has {len(seen)} seen / {len(unseen)} unseen classes; the thesis uses "
                     f"{EXPECTED_SPLIT[0]} / {EXPECTED_SPLIT[1]}")
    notes += common.count_notes(splits, EXPECTED_COUNTS, "Reed et al.'s split")
    empty = [c for c in classes if c not in set(seen) | set(unseen)]
    if empty:
        notes.append(f"{len(empty)} classes of {CLASSES} are in neither split (no items)")
    empty_files = [c for c, ys in zip(seen + unseen, class_ys) if not len(ys)]
    if empty_files:
        notes.append(f"{len(empty_files)} class files hold no rows (e.g. {empty_files[0]})")
    return common.Conversion(
        name=name, splits=splits, classes=classes, pairing="instance", converter=__name__,
        version=VERSION, sources=sources + files, source_format=", ".join(sorted(version)), label_base=None,
        notes=notes, extra={"zero_shot": zero_shot}, source_root=src,
    )
