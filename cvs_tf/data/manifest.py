"""The feature-set manifest: format constants, names of modalities and array files, and the checks of every field.

The manifest (``manifest.json``, ``format_version`` 1) records the dataset name, the modalities
with dimension and count per split, class names, label kind, pairing, the validation carve-out,
provenance (source files, converter and version, ``synthetic``) and the shape, dtype and sha256
of every array file. :func:`check_manifest` checks the type and value of every field, and
:func:`check_labels` / :func:`check_new_arrays` the label and feature arrays read or about to be
written; they raise :class:`FeatureSetError`, whose one-line message names the file and the
field that is wrong.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from cvs_tf.utils.fields import is_int as _is_int
from cvs_tf.utils.fields import json_kind as _json_kind
from cvs_tf.utils.fields import short as _short

FORMAT = "cvs_tf.featureset"
FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
LABEL_KINDS = ("single", "multi")
PAIRINGS = ("instance", "class")
MODALITY_ORDER = ("image", "text", "audio", "speech", "video", "3d")
MODALITY_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # full match: lower-case letters, digits, _ and -
FEATURE_DTYPES = ("float16", "float32", "float64")
REQUIRED_FIELDS = ("format", "name", "modalities", "classes", "label_kind", "pairing", "provenance", "arrays")


class FeatureSetError(ValueError):
    """A feature set (or a source file) is missing, malformed or inconsistent; message names file and field."""


def fail(path: Path, fld: str, msg: str):
    """Raise the one-line :class:`FeatureSetError` ``<path>: <field>: <message>``."""
    raise FeatureSetError(f"{path}: {fld}: {msg}")


def order_modalities(names: Iterable[str]) -> list[str]:
    """Canonical modality order (image, text, audio, speech, video, 3d, then others alphabetically)."""
    names = list(dict.fromkeys(names))
    known = [m for m in MODALITY_ORDER if m in names]
    return known + sorted(m for m in names if m not in MODALITY_ORDER)


def array_filename(modality: str, split: str, kind: str) -> str:
    """File name of one array: kind is ``x`` (features) or ``y`` (labels)."""
    return f"{modality}.{split}.{kind}.npy"


def modality_name_error(name) -> str | None:
    """Why ``name`` is not a valid modality name (None when it is)."""
    if isinstance(name, str) and MODALITY_NAME.fullmatch(name):
        return None
    return (f"invalid modality name {name!r} (use 1-64 lower-case letters, digits, '_' or '-', "
            "starting with a letter or digit)")


def fraction_error(fraction) -> str | None:
    """Why ``fraction`` is not a validation fraction in [0, 1) (None when it is)."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.integer, np.floating)):
        return f"must be a number in [0, 1), got {fraction!r}"
    if not (math.isfinite(fraction) and 0 <= fraction < 1):
        return f"must be in [0, 1), got {fraction}"
    return None


def check_fraction(fraction, what: str = "val_fraction") -> None:
    """Raise :class:`FeatureSetError` unless ``fraction`` is in [0, 1) (0: no validation split)."""
    err = fraction_error(fraction)
    if err:
        raise FeatureSetError(f"{what}: {err}")


def label_value_error(y: np.ndarray, label_kind: str, n_classes: int) -> str | None:
    """Why the values of labels ``y`` are not class ids in [0, n_classes) (single) or 0/1 (multi-hot);
    None when they are. Integer-valued float labels are accepted."""
    if not y.size:
        return None
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            return "contain NaN or Inf"
        frac = y != np.round(y)
        if frac.any():
            return f"not integers (found {y[frac].flat[0].item()!r})"
    if label_kind == "single" and (y.min() < 0 or y.max() >= n_classes):
        return f"out of range [0, {n_classes}) (min {y.min()}, max {y.max()})"
    if label_kind == "multi" and not np.isin(y, (0, 1)).all():
        return "multi-hot labels must be 0/1"
    return None


def as_labels(raw, rows: int | None = None, *, n_classes: int | None = None, label_kind: str | None = None,
              base: int = 0) -> tuple[np.ndarray, str]:
    """``(labels, label_kind)`` of a label array from outside: (N,) class ids (an (N, 1) column is read as
    one) come back as 0-based int64 (``base``: the smallest id), (N, C) multi-hot of 0/1 as uint8.

    ``rows``: the item count they must match; ``n_classes``: class ids must be below it (multi-hot: C
    must equal it); ``label_kind``: the kind they must be. Raises ValueError with the reason (no file
    name: the caller puts it in front). The one label check of import, index and search.
    """
    y = np.asarray(raw)
    if y.dtype.kind not in "biuf":
        raise ValueError(f"not a numeric array (dtype {y.dtype}; labels are class ids, names go in classes.txt)")
    if y.ndim == 2 and y.shape[1] == 1 and label_kind != "multi":
        y = y[:, 0]
    if y.ndim not in (1, 2):
        raise ValueError(f"wrong shape {y.shape}: labels must be (N,) class ids or (N, C) multi-hot")
    if rows is not None and len(y) != rows:
        raise ValueError(f"wrong shape: {len(y)} labels for {rows} feature rows")
    kind = "multi" if y.ndim == 2 else "single"
    if label_kind is not None and kind != label_kind:
        want = "(N, C) multi-hot" if label_kind == "multi" else "(N,) class ids"
        raise ValueError(f"wrong shape {y.shape}: {label_kind}-label data needs {want}")
    if kind == "multi":
        if not np.isin(y, (0, 1)).all():
            raise ValueError(f"labels out of range: multi-hot labels must be 0/1, found {y[~np.isin(y, (0, 1))][0].item()!r}")
        if n_classes is not None and y.shape[1] != n_classes:
            raise ValueError(f"wrong shape {y.shape}: multi-hot labels need {n_classes} columns (one per class)")
        return y.astype(np.uint8), kind
    if y.dtype.kind == "b":
        raise ValueError("labels out of range: boolean labels (class ids must be integers)")
    if y.dtype.kind == "f" and len(y):
        if not np.isfinite(y).all():
            raise ValueError("labels contain NaN or Inf")
        frac = y != np.round(y)
        if frac.any():
            raise ValueError(f"labels out of range: not integers (found {y[frac][0].item()!r})")
    if len(y) and (y.max() >= 2**31 or y.min() < base):
        bad = y.max() if y.max() >= 2**31 else y.min()
        raise ValueError(f"labels out of range: found {bad.item():g}, labels here are {base}-based")
    if len(y) and n_classes is not None and y.max() - base >= n_classes:
        raise ValueError(f"labels out of range: found {y.max().item():g}, but there are {n_classes} classes")
    return y.astype(np.int64) - base, kind


# --------------------------------------------------------------------------- checking arrays


def all_finite(x: np.ndarray, rows: int = 4096) -> bool:
    """No NaN/Inf, checked in row chunks so a memory-mapped array is never copied whole."""
    return all(np.isfinite(x[i : i + rows]).all() for i in range(0, len(x), rows))


def check_new_arrays(where: str, x: np.ndarray, y: np.ndarray, label_kind: str, n_classes: int) -> None:
    """Refuse what the casts of :func:`~cvs_tf.data.store.save_feature_set` would silently change
    (fractional, bool or out-of-range labels; complex, bool or text features); ``where`` starts the message."""
    if x.dtype.kind not in "fiu":
        raise FeatureSetError(f"{where} features: dtype {x.dtype} (features must be real numbers)")
    if y.dtype.kind not in "fiu":
        raise FeatureSetError(f"{where} labels: dtype {y.dtype} (labels must be integers)")
    if err := label_value_error(y, label_kind, n_classes):
        raise FeatureSetError(f"{where} labels: {err}")


def check_labels(ypath: Path, y: np.ndarray, label_kind: str, n_classes: int) -> np.ndarray:
    """Labels of the right dtype, shape and range; integer-valued float labels come back as integers."""
    if y.dtype.kind not in "iuf" or not y.dtype.isnative:
        fail(ypath, "labels", f"dtype {y.dtype} "
             "(labels are integer class ids, or 0/1 multi-hot, native byte order)")
    if label_kind == "single":
        if y.ndim != 1:
            fail(ypath, "labels", f"single-label data needs shape (N,), got {y.shape}")
    elif y.ndim != 2 or y.shape[1] != n_classes:
        fail(ypath, "labels", f"multi-hot data needs shape (N, {n_classes}), got {y.shape}")
    if err := label_value_error(y, label_kind, n_classes):
        fail(ypath, "labels", err)
    if y.size and y.dtype.kind == "f":
        y = np.asarray(y, dtype=np.int32 if label_kind == "single" else np.uint8)
    return y


# --------------------------------------------------------------------------- checking a manifest


def _obj(mpath: Path, value, fld: str) -> dict:
    if not isinstance(value, dict):
        fail(mpath, fld, f"must be a JSON object, got {_json_kind(value)}")
    return value


def check_manifest(mpath: Path, mf) -> None:
    """Every manifest field has the right JSON type and a legal value (one-line errors naming the field)."""
    _obj(mpath, mf, "manifest")
    for key in REQUIRED_FIELDS:
        if key not in mf:
            fail(mpath, key, "missing field")
    _check_header(mpath, mf)
    _check_classes(mpath, mf["classes"])
    mods = _obj(mpath, mf["modalities"], "modalities")
    if not mods:
        fail(mpath, "modalities", "empty")
    for m, info in mods.items():
        _check_modality(mpath, m, info)
    prov = _obj(mpath, mf["provenance"], "provenance")
    if "synthetic" in prov and not isinstance(prov["synthetic"], bool):
        fail(mpath, "provenance.synthetic", f"must be true or false, got {_short(prov['synthetic'])}")
    if "validation" in mf:
        _check_validation(mpath, mf["validation"], mods)
    if "zero_shot" in mf:
        _check_zero_shot(mpath, mf["zero_shot"], len(mf["classes"]))
    if "item_ids" in mf:
        _obj(mpath, mf["item_ids"], "item_ids")
    _check_array_records(mpath, _obj(mpath, mf["arrays"], "arrays"), mods)


def _check_header(mpath: Path, mf: dict) -> None:
    if mf["format"] != FORMAT:
        fail(mpath, "format", f"expected {FORMAT!r}, got {_short(mf['format'])}")
    version = mf.get("format_version")
    if not _is_int(version) or version != FORMAT_VERSION:
        fail(mpath, "format_version", f"unsupported {_short(version)} (this version reads {FORMAT_VERSION})")
    if not isinstance(mf["name"], str) or not mf["name"]:
        fail(mpath, "name", f"must be a non-empty string, got {_json_kind(mf['name'])}")
    for key, allowed in (("label_kind", LABEL_KINDS), ("pairing", PAIRINGS)):
        if not isinstance(mf[key], str) or mf[key] not in allowed:
            fail(mpath, key, f"must be one of {allowed}, got {_short(mf[key])}")


def _check_classes(mpath: Path, classes) -> None:
    if not isinstance(classes, list) or not classes:
        kind = "an empty array" if classes == [] else _json_kind(classes)
        fail(mpath, "classes", f"must be a non-empty list of strings, got {kind}")
    for i, c in enumerate(classes):
        if not isinstance(c, str):
            fail(mpath, "classes", f"must be a non-empty list of strings, item {i} is a {_json_kind(c)}")


def _check_modality(mpath: Path, m, info) -> None:
    if err := modality_name_error(m):
        fail(mpath, "modalities", err)
    fld = f"modalities.{m}"
    _obj(mpath, info, fld)
    dim = info.get("dim")
    if not _is_int(dim) or dim < 1:
        fail(mpath, f"{fld}.dim", f"must be a positive integer, got {_short(dim)}")
    if "counts" not in info:
        fail(mpath, f"{fld}.counts", "missing")
    counts = _obj(mpath, info["counts"], f"{fld}.counts")
    unknown = sorted(set(counts) - set(SPLITS))
    if unknown:
        fail(mpath, f"{fld}.counts", f"unknown split {_short(unknown[0])} (splits are {', '.join(SPLITS)})")
    for s in SPLITS:
        if s not in counts:
            fail(mpath, f"{fld}.counts.{s}", "missing")
        if not _is_int(counts[s]) or counts[s] < 0:
            fail(mpath, f"{fld}.counts.{s}", f"must be a non-negative integer, got {_short(counts[s])}")
    for s in ("train", "test"):
        if counts[s] == 0:
            fail(mpath, f"{fld}.counts.{s}", f"0 rows (every modality needs {s} items; only val may be empty)")


def _check_validation(mpath: Path, val, mods: dict) -> None:
    fraction = _obj(mpath, val, "validation").get("fraction")
    if fraction is None:
        return
    if err := fraction_error(fraction):
        fail(mpath, "validation.fraction", err)
    if fraction == 0:
        for m, info in mods.items():
            if info["counts"]["val"]:
                fail(mpath, "validation.fraction",
                     f"0 (no validation split) but modality {m!r} has {info['counts']['val']} val rows")


def _check_zero_shot(mpath: Path, zs, n_classes: int) -> None:
    zs = _obj(mpath, zs, "zero_shot")
    for key in ("seen", "unseen"):
        ids = zs.get(key)
        if not isinstance(ids, list) or not ids or not all(_is_int(c) and 0 <= c < n_classes for c in ids):
            fail(mpath, f"zero_shot.{key}", f"must be a non-empty list of class ids in [0, {n_classes}), got {_short(ids)}")
        if len(set(ids)) != len(ids):
            fail(mpath, f"zero_shot.{key}", "lists a class twice")
    both = sorted(set(zs["seen"]) & set(zs["unseen"]))
    if both:
        fail(mpath, "zero_shot", f"class {both[0]} is both seen and unseen")


def _check_array_records(mpath: Path, arrays: dict, mods: dict) -> None:
    expected = [array_filename(m, s, k) for m in mods for s in SPLITS for k in ("x", "y")]
    known = set(expected)
    for fname in arrays:
        if fname not in known:
            fail(mpath, f"arrays.{fname}",
                 "not a file of this set (entries are <modality>.<split>.<x|y>.npy of the listed modalities)")
    for fname in expected:
        fld = f"arrays.{fname}"
        if fname not in arrays:
            fail(mpath, fld, "missing entry")
        rec = _obj(mpath, arrays[fname], fld)
        shape = rec.get("shape")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            fail(mpath, f"{fld}.shape", f"must be a list of non-negative integers, got {_short(shape)}")
        for key in ("dtype", "sha256"):
            if not isinstance(rec.get(key), str):
                fail(mpath, f"{fld}.{key}", f"must be a string, got {_json_kind(rec.get(key))}")
