"""Convert XMedia's ``XMediaFeatures.mat`` (5 modalities, 20 classes, class-aligned, 1-based labels) to a feature set.

Expected keys (MATLAB v5 or v7.3), each features matrix ``(N, d)`` and each label vector
``(N, 1)`` of 1-based class ids::

    image  I_tr_CNN / I_te_CNN   trImgCat / teImgCat
    text   T_tr_BOW / T_te_BOW   trTxtCat / teTxtCat
    audio  A_tr     / A_te       trAudCat / teAudCat
    video  V_tr_CNN / V_te_CNN   trVidCat / teVidCat
    3d     d3_tr    / d3_te      tr3dCat  / te3dCat

Feature dimensions are read from the file; the documented ones (4096/3000/29/4096/4700) and the
thesis Table 1 counts are only compared against, and differences are reported. The number of
classes is the largest label found; a label above 20 is an error (corrupt data) unless
``allow_extra_classes`` is given.
"""

from __future__ import annotations

from pathlib import Path

from cvs_tf.data.benchmarks import DATASET_SPECS, expected_counts, expected_dims
from cvs_tf.data.converters import common
from cvs_tf.data.converters.matfile import MatFile

VERSION = "1"
FILE = "XMediaFeatures.mat"
LABEL_BASE = 1
LAYOUT = {  # modality: (train features, test features, train labels, test labels)
    "image": ("I_tr_CNN", "I_te_CNN", "trImgCat", "teImgCat"),
    "text": ("T_tr_BOW", "T_te_BOW", "trTxtCat", "teTxtCat"),
    "audio": ("A_tr", "A_te", "trAudCat", "teAudCat"),
    "video": ("V_tr_CNN", "V_te_CNN", "trVidCat", "teVidCat"),
    "3d": ("d3_tr", "d3_te", "tr3dCat", "te3dCat"),
}
EXPECTED_COUNTS = expected_counts("xmedia")  # thesis Table 1 (train, test)
EXPECTED_DIMS = expected_dims("xmedia")
EXPECTED_CLASSES = DATASET_SPECS["xmedia"].classes


def read_modality(mat: MatFile, x_tr: str, x_te: str, y_tr: str, y_te: str, base: int) -> dict:
    """Train and test (features, 0-based labels) of one modality stored under four keys."""
    xtr = mat.features(x_tr)
    xte = mat.features(x_te, dim=xtr.shape[1])
    ytr = mat.labels(y_tr, base=base, rows=len(xtr), rows_from=x_tr)
    yte = mat.labels(y_te, base=base, rows=len(xte), rows_from=x_te)
    return {"train": (xtr, ytr), "test": (xte, yte)}


def read(src: str | Path, *, name: str = "xmedia", allow_extra_classes: bool = False, **_options) -> common.Conversion:
    """Read and validate ``src`` (the .mat file, or a directory holding ``XMediaFeatures.mat``)."""
    path = common.resolve_file(src, FILE)
    mat = MatFile(path)
    splits = {m: read_modality(mat, *keys, base=LABEL_BASE) for m, keys in LAYOUT.items()}
    labels = {f"{path}: {LAYOUT[m][2 if s == 'train' else 3]}": y for m, per in splits.items() for s, (_, y) in per.items()}
    top, where = common.largest_label(labels)
    n_classes = top + 1
    notes = [f"read {path.name} ({mat.version})"]
    notes += common.check_class_count(n_classes, EXPECTED_CLASSES, dataset="XMedia", where=where,
                                      found=f"labels out of range: found {top + LABEL_BASE}",
                                      n_items=sum(len(y) for y in labels.values()), allow_extra=allow_extra_classes)
    notes += common.found_notes(splits, n_classes, counts=EXPECTED_COUNTS, table="thesis Table 1", dims=EXPECTED_DIMS,
                                dim_source="documented dim", expected_classes=EXPECTED_CLASSES, dataset="XMedia")
    return common.Conversion(
        name=name, splits=splits, classes=common.class_names(n_classes, LABEL_BASE), pairing="class",
        converter=__name__, version=VERSION, sources=[path], source_format=mat.version,
        label_base=LABEL_BASE, notes=notes,
    )
