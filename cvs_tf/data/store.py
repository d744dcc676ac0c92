"""The feature-set store: one validated on-disk format (manifest.json + .npy per modality/split) for every dataset.

Layout of a feature-set directory::

    DIR/
      manifest.json
      <modality>.<split>.x.npy     features, (N, d) float16/float32
      <modality>.<split>.y.npy     labels: (N,) int32 (single-label) or (N, C) uint8 (multi-hot)

Splits are ``train``, ``val`` and ``test``. ``val`` is a seeded, stratified carve-out of the
original training split (never of test; :mod:`cvs_tf.data.splits`), made once when the set is
written, so every consumer sees the same validation items. For instance-paired sets row ``i`` of
every modality in a split is the same item; the carve-out then takes the same rows from every
modality.

The manifest (:mod:`cvs_tf.data.manifest`) records names, dims, counts, classes, label kind,
pairing, the carve-out, provenance and the sha256 of every array file. ``load_feature_set``
checks all of it and raises :class:`FeatureSetError`, whose one-line message names the file and
the field that is wrong; every file is resolved inside the set's directory. A set written with
validation fraction 0 has 0-row ``val`` arrays (``FeatureSet.has_split("val")`` is false).

Writers build the set in a temporary directory beside the target and rename it into place
(:func:`cvs_tf.utils.atomic.atomic_dir`); the next write into the same parent removes the
temporaries of writers that are no longer running, so a ``kill -9`` leaves nothing behind for long.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cvs_tf.data.manifest import (  # noqa: F401 (re-exported: the store's public names)
    FEATURE_DTYPES,
    FORMAT,
    FORMAT_VERSION,
    LABEL_KINDS,
    MODALITY_NAME,
    MODALITY_ORDER,
    PAIRINGS,
    REQUIRED_FIELDS,
    SPLITS,
    FeatureSetError,
    all_finite,
    array_filename,
    check_fraction,
    check_labels,
    check_manifest,
    check_new_arrays,
    fail,
    fraction_error,
    label_value_error,
    modality_name_error,
    order_modalities,
)
from cvs_tf.data.splits import carve_validation, stratified_holdout  # noqa: F401 (re-exported)
from cvs_tf.utils.atomic import (  # noqa: F401 (re-exported)
    LEGACY_TEMP_AGE_S,
    atomic_dir,
    make_temporary,
    pid_alive,
    remove_stale_temporaries,
)


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


# --------------------------------------------------------------------------- writing


def _new_manifest(name: str, modalities: Iterable[str], classes: list[str], *, label_kind: str, pairing: str,
                  provenance: Mapping | None, validation: Mapping | None, extra: Mapping | None) -> dict:
    """The manifest of a set about to be written, without its modalities and arrays (checked arguments)."""
    if label_kind not in LABEL_KINDS:
        raise FeatureSetError(f"label_kind must be one of {LABEL_KINDS}, got {label_kind!r}")
    if pairing not in PAIRINGS:
        raise FeatureSetError(f"pairing must be one of {PAIRINGS}, got {pairing!r}")
    for m in modalities:
        if err := modality_name_error(m):
            raise FeatureSetError(f"{name}: modalities: {err}")
    validation = dict(validation or {"fraction": None, "note": "provided by the source"})
    if validation.get("fraction") is not None:
        check_fraction(validation["fraction"], f"{name}: validation.fraction")
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
    clash = sorted(set(extra or {}) & set(manifest))
    if clash:
        raise FeatureSetError(f"{name}: extra manifest fields may not replace core fields {clash}")
    manifest.update(dict(extra or {}))
    return manifest


def _stored(name: str, m: str, s: str, x, y, manifest: dict, feature_dtype) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of one (modality, split) checked and cast to what is stored."""
    x, y = np.asarray(x), np.asarray(y)
    label_kind = manifest["label_kind"]
    check_new_arrays(f"{name}: {m}/{s}", x, y, label_kind, len(manifest["classes"]))
    if s != "val" and not len(x):
        raise FeatureSetError(f"{name}: {m}/{s}: 0 rows (every modality needs train and test items)")
    if feature_dtype is not None:
        x = x.astype(feature_dtype)
    elif x.dtype not in (np.float16, np.float32, np.float64):
        x = x.astype(np.float32)
    y = y.astype(np.int32) if label_kind == "single" else y.astype(np.uint8)
    if x.ndim != 2 or not x.shape[1]:
        raise FeatureSetError(f"{name}: {m}/{s} features must be 2-D with at least one column, got shape {x.shape}")
    return x, y


def _write_modality(tmp: Path, manifest: dict, m: str, splits: Mapping, feature_dtype) -> dict:
    """Write the arrays of modality ``m`` into ``tmp``, record them in ``manifest``; returns its dim and counts."""
    name = manifest["name"]
    missing = [s for s in SPLITS if s not in splits]
    if missing:
        raise FeatureSetError(f"{name}: modality {m!r} lacks split(s) {missing}")
    counts, dim = {}, None
    for s in SPLITS:
        x, y = _stored(name, m, s, *splits[s], manifest, feature_dtype)
        if dim is None:
            dim = int(x.shape[1])
        elif x.shape[1] != dim:
            raise FeatureSetError(f"{name}: {m}/{s} has dim {x.shape[1]}, other splits {dim}")
        counts[s] = int(x.shape[0])
        for kind, arr in (("x", x), ("y", y)):
            fname = array_filename(m, s, kind)
            np.save(tmp / fname, np.ascontiguousarray(arr), allow_pickle=False)
            manifest["arrays"][fname] = {"shape": list(arr.shape), "dtype": str(arr.dtype),
                                         "sha256": sha256_file(tmp / fname)}
    return {"dim": dim, "counts": counts}


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
    manifest = _new_manifest(name, data, classes, label_kind=label_kind, pairing=pairing, provenance=provenance,
                             validation=validation, extra=extra)
    if out_dir.exists() and not overwrite:
        raise FeatureSetError(f"{out_dir}: output directory already exists (remove it first)")
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        for m in order_modalities(data):
            manifest["modalities"][m] = _write_modality(tmp, manifest, m, data[m], feature_dtype)
        with open(tmp / "manifest.json", "w") as f:
            json.dump(manifest, f, indent=2)
            f.write("\n")
        try:
            load_feature_set(tmp)  # validate before publishing
        except FeatureSetError as exc:
            raise FeatureSetError(str(exc).replace(str(tmp), str(out_dir))) from None
    return out_dir


# --------------------------------------------------------------------------- loading


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path`` (symlinks followed) lies inside the resolved directory ``root``."""
    return path.resolve().is_relative_to(root)


def read_manifest(path: Path) -> dict:
    """The checked manifest of the feature-set directory ``path``."""
    mpath = path / "manifest.json"
    if not path.is_dir():
        raise FeatureSetError(f"{path}: not a feature-set directory (no such directory)")
    if not mpath.is_file():
        raise FeatureSetError(f"{mpath}: missing (not a feature-set directory)")
    if not _inside(mpath, path.resolve()):
        fail(mpath, "file", "resolves outside the dataset directory")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FeatureSetError(f"{mpath}: not valid JSON ({exc})") from None
    except RecursionError:
        raise FeatureSetError(f"{mpath}: not valid JSON (nested too deeply)") from None
    check_manifest(mpath, manifest)
    return manifest


def _load_array(fpath: Path, root: Path, rec: dict, *, mmap: bool, verify: bool) -> np.ndarray:
    """One array file, inside the set, with the sha256 (``verify``), shape and dtype the manifest records."""
    if not _inside(fpath, root):
        fail(fpath, "file", "resolves outside the dataset directory")
    if not fpath.is_file():
        fail(fpath, "file", "missing")
    if verify and sha256_file(fpath) != rec["sha256"]:
        fail(fpath, "sha256", "does not match manifest (file changed or corrupt)")
    try:
        arr = np.load(fpath, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        fail(fpath, "file", f"unreadable .npy ({' '.join(str(exc).split())})")
    if list(arr.shape) != rec["shape"] or str(arr.dtype) != rec["dtype"]:
        fail(fpath, "shape", f"{arr.shape}/{arr.dtype} differs from manifest {rec['shape']}/{rec['dtype']}")
    return arr


def _load_split(path: Path, manifest: dict, m: str, s: str, **load) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of one (modality, split), checked against the manifest and each other."""
    xpath, ypath = path / array_filename(m, s, "x"), path / array_filename(m, s, "y")
    root = path.resolve()
    x, y = (_load_array(p, root, manifest["arrays"][p.name], **load) for p in (xpath, ypath))
    dim, count = manifest["modalities"][m]["dim"], manifest["modalities"][m]["counts"][s]
    if x.dtype.kind != "f" or str(x.dtype) not in FEATURE_DTYPES or not x.dtype.isnative:
        fail(xpath, "features", f"dtype {x.dtype} (features must be {', '.join(FEATURE_DTYPES)}, native byte order)")
    if x.ndim != 2 or x.shape[1] != dim:
        fail(xpath, "dim", f"features have shape {x.shape}, manifest dim is {dim}")
    if x.shape[0] != count:
        fail(xpath, "count", f"{x.shape[0]} rows, manifest says {count}")
    if y.ndim == 0 or y.shape[0] != x.shape[0]:
        fail(ypath, "count", f"{y.shape[0] if y.ndim else 'no'} labels for {x.shape[0]} feature rows")
    if x.size and not all_finite(x):
        fail(xpath, "features", "contain NaN or Inf")
    y = check_labels(ypath, y, manifest["label_kind"], len(manifest["classes"]))
    if "zero_shot" in manifest and manifest["label_kind"] == "single" and y.size:
        allowed = manifest["zero_shot"]["unseen" if s == "test" else "seen"]
        stray = np.setdiff1d(np.unique(y), allowed)
        if stray.size:
            fail(ypath, "labels", f"class {int(stray[0])} in {s} is not a zero_shot "
                 f"{'unseen' if s == 'test' else 'seen'} class")
    return x, y


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
    manifest = read_manifest(path)
    arrays = {(m, s): _load_split(path, manifest, m, s, mmap=mmap, verify=verify)
              for m in manifest["modalities"] for s in SPLITS}
    if manifest["pairing"] == "instance":
        for s in SPLITS:
            n = {arrays[(m, s)][0].shape[0] for m in manifest["modalities"]}
            if len(n) > 1:
                fail(path / "manifest.json", "pairing", f"instance-paired but {s} counts differ {sorted(n)}")
    return FeatureSet(path, manifest, arrays)
