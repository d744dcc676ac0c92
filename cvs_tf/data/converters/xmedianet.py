"""Convert XMediaNet (``XMediaNetFeatures.mat``, or the image-text ``XMediaNet5View_Doc2Vec.mat``) to a feature set.

Both files use the same key scheme (MATLAB v5 or v7.3); ``P`` is the modality prefix
(``I`` image, ``T`` text, ``V`` video, ``A`` audio, ``TD`` 3d)::

    P_tr    (N_tr, d)          training features
    P_te    (N_te, d)          test features
    P_labs  (N_tr + N_te, 1)   labels of train THEN test in one vector

The train/test boundary of ``P_labs`` is the row count of ``P_tr``: its first ``N_tr`` entries
label ``P_tr``, the remaining ``N_te`` label ``P_te``, and the total must match exactly.
Labels are 1-based as in MATLAB; a file whose labels contain a 0 is read as 0-based (the
converter says which it used and records it as ``provenance.label_base``).

Variants: ``full`` (``XMediaNetFeatures.mat``) needs all five modalities; ``doc2vec``
(``XMediaNet5View_Doc2Vec.mat``: image 4096-d, text 300-d doc2vec) needs image and text and
converts any of video/audio/3d that are also present. ``auto`` picks ``doc2vec`` when the file
name contains "doc2vec", else ``full``. Items are paired by class only, 200 classes; a label
beyond 200 is an error (corrupt data) unless ``allow_extra_classes`` is given.
"""

from __future__ import annotations

from pathlib import Path

from cvs_tf.data.benchmarks import DATASET_SPECS, expected_counts
from cvs_tf.data.converters import common
from cvs_tf.data.converters.matfile import MatFile
from cvs_tf.data.store import FeatureSetError

VERSION = "1"
FILE = "XMediaNetFeatures.mat"
DOC2VEC_FILE = "XMediaNet5View_Doc2Vec.mat"
VARIANTS = ("auto", "full", "doc2vec")
PREFIX = {"image": "I", "text": "T", "video": "V", "audio": "A", "3d": "TD"}
EXPECTED_COUNTS = expected_counts("xmedianet")  # thesis Table 1 (train, test)
EXPECTED_DIMS = {"full": {}, "doc2vec": {"image": 4096, "text": 300}}  # the full file's dims are not published
EXPECTED_CLASSES = DATASET_SPECS["xmedianet"].classes


def find_file(src: str | Path, variant: str) -> Path:
    """The .mat file to read: ``src`` itself, or the variant's file inside directory ``src``."""
    src = Path(src)
    if src.is_dir():
        names = {"full": [FILE], "doc2vec": [DOC2VEC_FILE], "auto": [FILE, DOC2VEC_FILE]}[variant]
        for n in names:
            if (src / n).is_file():
                return src / n
        raise FeatureSetError(f"{src / names[0]}: file: file not found" + (f" (nor {names[1]})" if len(names) > 1 else ""))
    if not src.is_file():
        raise FeatureSetError(f"{src}: file: file not found")
    return src


def detect_variant(path: Path, variant: str) -> str:
    if variant not in VARIANTS:
        raise FeatureSetError(f"{path}: variant: unknown {variant!r} (use {', '.join(VARIANTS)})")
    if variant != "auto":
        return variant
    return "doc2vec" if "doc2vec" in path.name.lower() else "full"


def read(src: str | Path, *, name: str = "xmedianet", variant: str = "auto", allow_extra_classes: bool = False,
         **_options) -> common.Conversion:
    """Read and validate an XMediaNet file (see the module docstring for the layout)."""
    path = find_file(src, variant if variant in VARIANTS else "auto")
    variant = detect_variant(path, variant)
    mat = MatFile(path)
    required = ("image", "text") if variant == "doc2vec" else tuple(PREFIX)
    mods = [m for m in PREFIX if m in required or mat.has(f"{PREFIX[m]}_tr")]
    raw = {}
    for m in mods:
        p = PREFIX[m]
        try:
            xtr = mat.features(f"{p}_tr")
        except FeatureSetError as exc:
            hint = "; for the image-text file use --variant doc2vec" if m not in ("image", "text") else ""
            raise FeatureSetError(f"{exc}{hint}") from None
        xte = mat.features(f"{p}_te", dim=xtr.shape[1])
        labs = mat.labels(f"{p}_labs", base=0, rows=len(xtr) + len(xte), rows_from=f"{p}_tr + {p}_te")
        raw[m] = (xtr, xte, labs)
    # labels were read as >= 0; a 0 anywhere means the file is 0-based
    base = 0 if any(len(labs) and labs.min() == 0 for _, _, labs in raw.values()) else 1
    splits = {}
    for m, (xtr, xte, labs) in raw.items():
        y = labs - base
        splits[m] = {"train": (xtr, y[: len(xtr)]), "test": (xte, y[len(xtr):])}
    labels = {f"{path}: {PREFIX[m]}_labs": labs - base for m, (_, _, labs) in raw.items()}
    top, where = common.largest_label(labels)
    n_classes = top + 1
    notes = [f"read {path.name} ({mat.version}), variant {variant}, labels {base}-based "
             f"(P_labs split at the row count of P_tr)"]
    notes += common.check_class_count(n_classes, EXPECTED_CLASSES, dataset="XMediaNet", where=where,
                                      found=f"labels out of range: found {top + base}",
                                      n_items=sum(len(y) for y in labels.values()), allow_extra=allow_extra_classes)
    notes += common.found_notes(splits, n_classes, counts=EXPECTED_COUNTS, table="thesis Table 1",
                                dims=EXPECTED_DIMS[variant], dim_source="documented dim",
                                expected_classes=EXPECTED_CLASSES, dataset="XMediaNet")
    return common.Conversion(
        name=name, splits=splits, classes=common.class_names(n_classes, base), pairing="class",
        converter=__name__, version=VERSION, sources=[path], source_format=mat.version,
        label_base=base, notes=notes, extra={"variant": variant},
    )

