"""The feature-set store: one validated on-disk format (manifest.json + .npy per modality/split) for every dataset.

Layout of a feature-set directory::

    DIR/
      manifest.json
      <modality>.<split>.x.npy     features, (N, d) float16/float32
      <modality>.<split>.y.npy     labels: (N,) int32 (single-label) or (N, C) uint8 (multi-hot)

Splits are ``train``, ``val`` and ``test``. ``val`` is a seeded, stratified carve-out of the
original training split (never of test), made once when the set is written, so every consumer
sees the same validation items. For instance-paired sets row ``i`` of every modality in a split
is the same item; the carve-out then takes the same rows from every modality.

The manifest (``format_version`` 1) records the dataset name, the modalities with dimension and
count per split, class names, label kind, pairing, the validation carve-out, provenance
(source files, converter and version, ``synthetic``) and the sha256 of every array file.
``load_feature_set`` checks all of it and raises :class:`FeatureSetError`, whose one-line
message names the file and the field that is wrong. Modality names match
:data:`MODALITY_NAME` and every file is resolved inside the set's directory. A set written with
validation fraction 0 has 0-row ``val`` arrays (``FeatureSet.has_split("val")`` is false).

Writers work in a temporary directory ``.<target>.tmp-<pid>@<host>-XXXXXXXX`` beside the target;
the next write into the same parent removes those of writers that are no longer running
(:func:`remove_stale_temporaries`), so a ``kill -9`` leaves nothing behind for long.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cvs_tf.utils.atomic import (  # noqa: F401 (re-exported)
    LEGACY_TEMP_AGE_S,
    make_temporary,
    pid_alive,
    remove_stale_temporaries,
)

FORMAT = "cvs_tf.featureset"
FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
LABEL_KINDS = ("single", "multi")
PAIRINGS = ("instance", "class")
MODALITY_ORDER = ("image", "text", "audio", "speech", "video", "3d")
MODALITY_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # full match: lower-case letters, digits, _ and -
FEATURE_DTYPES = ("float16", "float32", "float64")


class FeatureSetError(ValueError):
    """A feature set (or a source file) is missing, malformed or inconsistent; message names file and field."""


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


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class FeatureSet:
    """A loaded feature set: manifest plus (features, labels) per (modality, split)."""

    path: Path | None
    manifest: dict
    arrays: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = field(repr=False)

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def modalities(self) -> list[str]:
        return list(self.manifest["modalities"])

    @property
    def classes(self) -> list[str]:
        return list(self.manifest["classes"])

    @property
    def num_classes(self) -> int:
        return len(self.manifest["classes"])

    @property
    def label_kind(self) -> str:
        return self.manifest["label_kind"]

    @property
    def paired(self) -> bool:
        return self.manifest["pairing"] == "instance"

    @property
    def synthetic(self) -> bool:
        return bool(self.manifest["provenance"].get("synthetic", False))

    @property
    def data_label(self) -> str:
        """Human label for tables: ``synthetic stand-in`` or ``real features``."""
        return "synthetic stand-in" if self.synthetic else "real features"

    @property
    def manifest_sha256(self) -> str:
        blob = json.dumps(self.manifest, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()

    def dim(self, modality: str) -> int:
        return int(self.manifest["modalities"][modality]["dim"])

    def count(self, modality: str, split: str) -> int:
        return int(self.manifest["modalities"][modality]["counts"][split])

    def has_split(self, split: str, modalities: Iterable[str] | None = None) -> bool:
        """Whether every modality (or each of ``modalities``) has at least one row in ``split``.

        ``fs.has_split("val")`` is false for a set written with validation fraction 0.
        """
        if split not in SPLITS:
            raise FeatureSetError(f"{self.name}: unknown split {split!r} (use {', '.join(SPLITS)})")
        mods = self.modalities if modalities is None else list(modalities)
        for m in mods:
            self._get(m, split)
        return all(self.count(m, split) > 0 for m in mods)

    def x(self, modality: str, split: str) -> np.ndarray:
        return self._get(modality, split)[0]

    def y(self, modality: str, split: str) -> np.ndarray:
        return self._get(modality, split)[1]

    def _get(self, modality: str, split: str):
        if modality not in self.manifest["modalities"]:
            raise FeatureSetError(
                f"{self.name}: no modality {modality!r} (has {', '.join(self.modalities)})"
            )
        if split not in SPLITS:
            raise FeatureSetError(f"{self.name}: unknown split {split!r} (use {', '.join(SPLITS)})")
        return self.arrays[(modality, split)]

    def subset(self, modalities: Iterable[str]) -> FeatureSet:
        """A view restricted to some modalities (same arrays, trimmed manifest)."""
        mods = list(modalities)
        for m in mods:
            self._get(m, "train")
        manifest = json.loads(json.dumps(self.manifest))
        manifest["modalities"] = {m: manifest["modalities"][m] for m in mods}
        arrays = {k: v for k, v in self.arrays.items() if k[0] in mods}
        return FeatureSet(self.path, manifest, arrays)

    def summary_rows(self) -> list[dict]:
        """One row per modality: dim and counts per split."""
        rows = []
        for m in self.modalities:
            c = self.manifest["modalities"][m]["counts"]
            rows.append({"modality": m, "dim": self.dim(m), **{s: c[s] for s in SPLITS}})
        return rows


# --------------------------------------------------------------------------- validation carve-out


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of a seeded, class-stratified holdout of ``fraction`` of the rows.

    For multi-hot labels the stratum is the first active class (or -1 for an all-zero row).
    Each class with at least 2 items gives ``round(fraction * n_c)`` items (at least 1 when
    ``fraction > 0``, and never all of them), so every class keeps training items.
    """
    labels = np.asarray(labels)
    strata = labels if labels.ndim == 1 else np.where(labels.any(1), labels.argmax(1), -1)
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(strata), dtype=bool)
    if fraction <= 0:
        return mask
    for c in np.unique(strata):
        idx = np.flatnonzero(strata == c)
        if len(idx) < 2:
            continue
        n = min(max(1, int(round(fraction * len(idx)))), len(idx) - 1)
        mask[rng.choice(idx, size=n, replace=False)] = True
    return mask


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


def carve_validation(
    splits: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]],
    fraction: float = 0.1,
    seed: int = 0,
    paired: bool = False,
) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Split each modality's ``train`` into ``train`` + ``val``; ``test`` is passed through untouched.

    ``splits`` maps modality -> {"train": (x, y), "test": (x, y)}. With ``paired=True`` the same
    rows are held out from every modality (they must have equal train counts and labels).
    """
    check_fraction(fraction)
    out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    mods = list(splits)
    shared_mask = None
    if paired:
        n = {len(splits[m]["train"][0]) for m in mods}
        if len(n) != 1:
            raise FeatureSetError(f"instance-paired set has unequal train counts {sorted(n)}")
        shared_mask = stratified_holdout(splits[mods[0]]["train"][1], fraction, seed)
    for i, m in enumerate(mods):
        x, y = splits[m]["train"]
        mask = shared_mask if paired else stratified_holdout(y, fraction, seed + 7919 * i)
        out[m] = {
            "train": (x[~mask], y[~mask]),
            "val": (x[mask], y[mask]),
            "test": splits[m]["test"],
        }
    return out


# --------------------------------------------------------------------------- temporaries

# --------------------------------------------------------------------------- writing


def _check_arrays(name: str, m: str, s: str, x: np.ndarray, y: np.ndarray, label_kind: str, n_classes: int) -> None:
    """Refuse what the casts in :func:`save_feature_set` would silently change (fractional, bool or
    out-of-range labels; complex, bool or text features)."""
    where = f"{name}: {m}/{s}"
    if x.dtype.kind not in "fiu":
        raise FeatureSetError(f"{where} features: dtype {x.dtype} (features must be real numbers)")
    if y.dtype.kind not in "fiu":
        raise FeatureSetError(f"{where} labels: dtype {y.dtype} (labels must be integers)")
    if not y.size:
        return
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            raise FeatureSetError(f"{where} labels: contain NaN or Inf")
        frac = y != np.round(y)
        if frac.any():
            raise FeatureSetError(f"{where} labels: not integers (found {y[frac].flat[0].item()!r})")
    if label_kind == "single" and (y.min() < 0 or y.max() >= n_classes):
        raise FeatureSetError(f"{where} labels: out of range [0, {n_classes}) (min {y.min()}, max {y.max()})")
    if label_kind == "multi" and not np.isin(y, (0, 1)).all():
        raise FeatureSetError(f"{where} labels: multi-hot labels must be 0/1")


def save_feature_set(
    out_dir: str | os.PathLike,
    name: str,
    data: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]],
    classes: list[str],
    *,
    label_kind: str = "single",
    pairing: str = "class",
    provenance: Mapping | None = None,
    validation: Mapping | None = None,
    feature_dtype: str | np.dtype | None = None,
    extra: Mapping | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a feature set atomically (temporary directory, validated, then renamed into place).

    ``data`` maps modality -> {"train"|"val"|"test": (features, labels)}; all three splits are
    required (use :func:`carve_validation` to make ``val``; it has 0 rows when the validation
    fraction is 0). ``feature_dtype`` casts features (e.g. ``"float16"`` for shipped data);
    labels are stored as int32 (single) or uint8 (multi). On any error nothing is left at
    ``out_dir``; errors name ``out_dir``, never the temporary.
    """
    out_dir = Path(out_dir)
    if label_kind not in LABEL_KINDS:
        raise FeatureSetError(f"label_kind must be one of {LABEL_KINDS}, got {label_kind!r}")
    if pairing not in PAIRINGS:
        raise FeatureSetError(f"pairing must be one of {PAIRINGS}, got {pairing!r}")
    for m in data:
        if err := modality_name_error(m):
            raise FeatureSetError(f"{name}: modalities: {err}")
    validation = dict(validation or {"fraction": None, "note": "provided by the source"})
    if validation.get("fraction") is not None:
        check_fraction(validation["fraction"], f"{name}: validation.fraction")
    if out_dir.exists() and not overwrite:
        raise FeatureSetError(f"{out_dir}: output directory already exists (remove it first)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temporary(out_dir)
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the published set gets normal permissions
    try:
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": name,
            "modalities": {},
            "classes": [str(c) for c in classes],
            "label_kind": label_kind,
            "pairing": pairing,
            "validation": validation,
            "provenance": {"synthetic": False, **dict(provenance or {})},
            "arrays": {},
        }
        if extra:
            clash = sorted(set(extra) & set(manifest))
            if clash:
                raise FeatureSetError(f"{name}: extra manifest fields may not replace core fields {clash}")
            manifest.update(dict(extra))
        for m in order_modalities(data):
            splits = data[m]
            missing = [s for s in SPLITS if s not in splits]
            if missing:
                raise FeatureSetError(f"{name}: modality {m!r} lacks split(s) {missing}")
            counts = {}
            dim = None
            for s in SPLITS:
                x, y = splits[s]
                x, y = np.asarray(x), np.asarray(y)
                _check_arrays(name, m, s, x, y, label_kind, len(manifest["classes"]))
                if s != "val" and not len(x):
                    raise FeatureSetError(f"{name}: {m}/{s}: 0 rows (every modality needs train and test items)")
                if feature_dtype is not None:
                    x = x.astype(feature_dtype)
                elif x.dtype not in (np.float16, np.float32, np.float64):
                    x = x.astype(np.float32)
                y = y.astype(np.int32) if label_kind == "single" else y.astype(np.uint8)
                if x.ndim != 2 or not x.shape[1]:
                    raise FeatureSetError(f"{name}: {m}/{s} features must be 2-D with at least one column, got shape {x.shape}")
                if dim is None:
                    dim = int(x.shape[1])
                elif x.shape[1] != dim:
                    raise FeatureSetError(f"{name}: {m}/{s} has dim {x.shape[1]}, other splits {dim}")
                counts[s] = int(x.shape[0])
                for kind, arr in (("x", x), ("y", y)):
                    fname = array_filename(m, s, kind)
                    np.save(tmp / fname, np.ascontiguousarray(arr), allow_pickle=False)
                    manifest["arrays"][fname] = {
                        "shape": list(arr.shape),
                        "dtype": str(arr.dtype),
                        "sha256": sha256_file(tmp / fname),
                    }
            manifest["modalities"][m] = {"dim": dim, "counts": counts}
        with open(tmp / "manifest.json", "w") as f:
            json.dump(manifest, f, indent=2)
            f.write("\n")
        try:
            load_feature_set(tmp)  # validate before publishing
        except FeatureSetError as exc:
            raise FeatureSetError(str(exc).replace(str(tmp), str(out_dir))) from None
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


# --------------------------------------------------------------------------- loading

REQUIRED_FIELDS = ("format", "name", "modalities", "classes", "label_kind", "pairing", "provenance", "arrays")


def all_finite(x: np.ndarray, rows: int = 4096) -> bool:
    """No NaN/Inf, checked in row chunks so a memory-mapped array is never copied whole."""
    return all(np.isfinite(x[i : i + rows]).all() for i in range(0, len(x), rows))


def _fail(path: Path, fld: str, msg: str):
    raise FeatureSetError(f"{path}: {fld}: {msg}")


def _json_kind(value) -> str:
    """JSON type name of a decoded value, for messages."""
    for kind, types in (("null", type(None)), ("boolean", bool), ("number", (int, float)), ("string", str),
                        ("array", list), ("object", dict)):
        if isinstance(value, types):
            return kind
    return type(value).__name__


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_manifest(mpath: Path, mf) -> None:
    """Every manifest field has the right JSON type and a legal value (one-line errors naming the field)."""

    def obj(value, fld):
        if not isinstance(value, dict):
            _fail(mpath, fld, f"must be a JSON object, got {_json_kind(value)}")
        return value

    obj(mf, "manifest")
    for key in REQUIRED_FIELDS:
        if key not in mf:
            _fail(mpath, key, "missing field")
    if mf["format"] != FORMAT:
        _fail(mpath, "format", f"expected {FORMAT!r}, got {_short(mf['format'])}")
    version = mf.get("format_version")
    if not _is_int(version) or version != FORMAT_VERSION:
        _fail(mpath, "format_version", f"unsupported {_short(version)} (this version reads {FORMAT_VERSION})")
    if not isinstance(mf["name"], str) or not mf["name"]:
        _fail(mpath, "name", f"must be a non-empty string, got {_json_kind(mf['name'])}")
    for key, allowed in (("label_kind", LABEL_KINDS), ("pairing", PAIRINGS)):
        if not isinstance(mf[key], str) or mf[key] not in allowed:
            _fail(mpath, key, f"must be one of {allowed}, got {_short(mf[key])}")
    classes = mf["classes"]
    if not isinstance(classes, list) or not classes:
        _fail(mpath, "classes", f"must be a non-empty list of strings, got {'an empty array' if classes == [] else _json_kind(classes)}")
    for i, c in enumerate(classes):
        if not isinstance(c, str):
            _fail(mpath, "classes", f"must be a non-empty list of strings, item {i} is a {_json_kind(c)}")
    n_classes = len(classes)

    mods = obj(mf["modalities"], "modalities")
    if not mods:
        _fail(mpath, "modalities", "empty")
    for m, info in mods.items():
        if err := modality_name_error(m):
            _fail(mpath, "modalities", err)
        fld = f"modalities.{m}"
        obj(info, fld)
        dim = info.get("dim")
        if not _is_int(dim) or dim < 1:
            _fail(mpath, f"{fld}.dim", f"must be a positive integer, got {_short(dim)}")
        if "counts" not in info:
            _fail(mpath, f"{fld}.counts", "missing")
        counts = obj(info["counts"], f"{fld}.counts")
        unknown = sorted(set(counts) - set(SPLITS))
        if unknown:
            _fail(mpath, f"{fld}.counts", f"unknown split {_short(unknown[0])} (splits are {', '.join(SPLITS)})")
        for s in SPLITS:
            if s not in counts:
                _fail(mpath, f"{fld}.counts.{s}", "missing")
            if not _is_int(counts[s]) or counts[s] < 0:
                _fail(mpath, f"{fld}.counts.{s}", f"must be a non-negative integer, got {_short(counts[s])}")
        for s in ("train", "test"):
            if counts[s] == 0:
                _fail(mpath, f"{fld}.counts.{s}", f"0 rows (every modality needs {s} items; only val may be empty)")

    prov = obj(mf["provenance"], "provenance")
    if "synthetic" in prov and not isinstance(prov["synthetic"], bool):
        _fail(mpath, "provenance.synthetic", f"must be true or false, got {_short(prov['synthetic'])}")
    if "validation" in mf:
        val = obj(mf["validation"], "validation")
        fraction = val.get("fraction")
        if fraction is not None:
            if err := fraction_error(fraction):
                _fail(mpath, "validation.fraction", err)
            if fraction == 0:
                for m, info in mods.items():
                    if info["counts"]["val"]:
                        _fail(mpath, "validation.fraction",
                              f"0 (no validation split) but modality {m!r} has {info['counts']['val']} val rows")
    if "zero_shot" in mf:
        zs = obj(mf["zero_shot"], "zero_shot")
        for key in ("seen", "unseen"):
            ids = zs.get(key)
            if not isinstance(ids, list) or not ids or not all(_is_int(c) and 0 <= c < n_classes for c in ids):
                _fail(mpath, f"zero_shot.{key}", f"must be a non-empty list of class ids in [0, {n_classes}), got {_short(ids)}")
            if len(set(ids)) != len(ids):
                _fail(mpath, f"zero_shot.{key}", "lists a class twice")
        both = sorted(set(zs["seen"]) & set(zs["unseen"]))
        if both:
            _fail(mpath, "zero_shot", f"class {both[0]} is both seen and unseen")
    if "item_ids" in mf:
        obj(mf["item_ids"], "item_ids")

    arrays = obj(mf["arrays"], "arrays")
    expected = [array_filename(m, s, k) for m in mods for s in SPLITS for k in ("x", "y")]
    known = set(expected)
    for fname in arrays:
        if fname not in known:
            _fail(mpath, f"arrays.{fname}",
                  "not a file of this set (entries are <modality>.<split>.<x|y>.npy of the listed modalities)")
    for fname in expected:
        fld = f"arrays.{fname}"
        if fname not in arrays:
            _fail(mpath, fld, "missing entry")
        rec = obj(arrays[fname], fld)
        shape = rec.get("shape")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            _fail(mpath, f"{fld}.shape", f"must be a list of non-negative integers, got {_short(shape)}")
        for key in ("dtype", "sha256"):
            if not isinstance(rec.get(key), str):
                _fail(mpath, f"{fld}.{key}", f"must be a string, got {_json_kind(rec.get(key))}")


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path`` (symlinks followed) lies inside the resolved directory ``root``."""
    return path.resolve().is_relative_to(root)


def _check_labels(ypath: Path, y: np.ndarray, label_kind: str, n_classes: int) -> np.ndarray:
    """Labels of the right dtype, shape and range; integer-valued float labels come back as integers."""
    if y.dtype.kind not in "iuf" or not y.dtype.isnative:
        _fail(ypath, "labels", f"dtype {y.dtype} "
              "(labels are integer class ids, or 0/1 multi-hot, native byte order)")
    if label_kind == "single":
        if y.ndim != 1:
            _fail(ypath, "labels", f"single-label data needs shape (N,), got {y.shape}")
    elif y.ndim != 2 or y.shape[1] != n_classes:
        _fail(ypath, "labels", f"multi-hot data needs shape (N, {n_classes}), got {y.shape}")
    if not y.size:
        return y
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            _fail(ypath, "labels", "contain NaN or Inf")
        frac = y != np.round(y)
        if frac.any():
            _fail(ypath, "labels", f"not integers (found {y[frac].flat[0].item()!r})")
    if label_kind == "single":
        if y.min() < 0 or y.max() >= n_classes:
            _fail(ypath, "labels", f"out of range [0, {n_classes}) (min {y.min()}, max {y.max()})")
    elif not np.isin(y, (0, 1)).all():
        _fail(ypath, "labels", "multi-hot labels must be 0/1")
    if y.dtype.kind == "f":
        y = np.asarray(y, dtype=np.int32 if label_kind == "single" else np.uint8)
    return y


def load_feature_set(path: str | os.PathLike, *, mmap: bool = True, verify: bool = True) -> FeatureSet:
    """Load and validate a feature-set directory.

    Checks: the type and value of every manifest field; modality names; every array present
    inside the directory with the recorded shape/dtype and sha256 (``verify``); float features
    and integer labels (integer-valued float labels are accepted and converted); dims and
    counts against the manifest; train and test non-empty for every modality (val may be empty);
    labels in range (multi-hot: 0/1); no NaN or Inf in features. Raises :class:`FeatureSetError`
    naming the file and field.
    """
    path = Path(path)
    mpath = path / "manifest.json"
    if not path.is_dir():
        raise FeatureSetError(f"{path}: not a feature-set directory (no such directory)")
    if not mpath.is_file():
        raise FeatureSetError(f"{mpath}: missing (not a feature-set directory)")
    root = path.resolve()
    if not _inside(mpath, root):
        _fail(mpath, "file", "resolves outside the dataset directory")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FeatureSetError(f"{mpath}: not valid JSON ({exc})") from None
    except RecursionError:
        raise FeatureSetError(f"{mpath}: not valid JSON (nested too deeply)") from None
    _check_manifest(mpath, manifest)
    n_classes = len(manifest["classes"])

    arrays: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    for m, info in manifest["modalities"].items():
        dim = info["dim"]
        counts = info["counts"]
        for s in SPLITS:
            loaded = []
            for kind in ("x", "y"):
                fname = array_filename(m, s, kind)
                fpath = path / fname
                rec = manifest["arrays"][fname]
                if not _inside(fpath, root):
                    _fail(fpath, "file", "resolves outside the dataset directory")
                if not fpath.is_file():
                    _fail(fpath, "file", "missing")
                if verify and sha256_file(fpath) != rec["sha256"]:
                    _fail(fpath, "sha256", "does not match manifest (file changed or corrupt)")
                try:
                    arr = np.load(fpath, mmap_mode="r" if mmap else None, allow_pickle=False)
                except (ValueError, OSError, EOFError) as exc:
                    _fail(fpath, "file", f"unreadable .npy ({' '.join(str(exc).split())})")
                if list(arr.shape) != rec["shape"] or str(arr.dtype) != rec["dtype"]:
                    _fail(fpath, "shape", f"{arr.shape}/{arr.dtype} differs from manifest {rec['shape']}/{rec['dtype']}")
                loaded.append(arr)
            x, y = loaded
            xpath, ypath = path / array_filename(m, s, "x"), path / array_filename(m, s, "y")
            if x.dtype.kind != "f" or str(x.dtype) not in FEATURE_DTYPES or not x.dtype.isnative:
                _fail(xpath, "features", f"dtype {x.dtype} "
                      f"(features must be {', '.join(FEATURE_DTYPES)}, native byte order)")
            if x.ndim != 2 or x.shape[1] != dim:
                _fail(xpath, "dim", f"features have shape {x.shape}, manifest dim is {dim}")
            if x.shape[0] != counts[s]:
                _fail(xpath, "count", f"{x.shape[0]} rows, manifest says {counts[s]}")
            if y.ndim == 0 or y.shape[0] != x.shape[0]:
                _fail(ypath, "count", f"{y.shape[0] if y.ndim else 'no'} labels for {x.shape[0]} feature rows")
            if x.size and not all_finite(x):
                _fail(xpath, "features", "contain NaN or Inf")
            y = _check_labels(ypath, y, manifest["label_kind"], n_classes)
            if "zero_shot" in manifest and manifest["label_kind"] == "single" and y.size:
                allowed = manifest["zero_shot"]["unseen" if s == "test" else "seen"]
                stray = np.setdiff1d(np.unique(y), allowed)
                if stray.size:
                    _fail(ypath, "labels", f"class {int(stray[0])} in {s} is not a zero_shot "
                          f"{'unseen' if s == 'test' else 'seen'} class")
            arrays[(m, s)] = (x, y)
    if manifest["pairing"] == "instance":
        for s in SPLITS:
            n = {arrays[(m, s)][0].shape[0] for m in manifest["modalities"]}
            if len(n) > 1:
                _fail(mpath, "pairing", f"instance-paired but {s} counts differ {sorted(n)}")
    return FeatureSet(path, manifest, arrays)
