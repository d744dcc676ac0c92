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
message names the file and the field that is wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMAT = "cvs_tf.featureset"
FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
LABEL_KINDS = ("single", "multi")
PAIRINGS = ("instance", "class")
MODALITY_ORDER = ("image", "text", "audio", "speech", "video", "3d")


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


# --------------------------------------------------------------------------- writing


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
    required (use :func:`carve_validation` to make ``val``). ``feature_dtype`` casts features
    (e.g. ``"float16"`` for shipped data); labels are stored as int32 (single) or uint8 (multi).
    On any error nothing is left at ``out_dir``.
    """
    out_dir = Path(out_dir)
    if label_kind not in LABEL_KINDS:
        raise FeatureSetError(f"label_kind must be one of {LABEL_KINDS}, got {label_kind!r}")
    if pairing not in PAIRINGS:
        raise FeatureSetError(f"pairing must be one of {PAIRINGS}, got {pairing!r}")
    if out_dir.exists() and not overwrite:
        raise FeatureSetError(f"{out_dir}: output directory already exists (remove it first)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
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
            "validation": dict(validation or {"fraction": None, "note": "provided by the source"}),
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
                x = np.asarray(x)
                if feature_dtype is not None:
                    x = x.astype(feature_dtype)
                elif x.dtype not in (np.float16, np.float32, np.float64):
                    x = x.astype(np.float32)
                y = np.asarray(y)
                y = y.astype(np.int32) if label_kind == "single" else y.astype(np.uint8)
                if x.ndim != 2:
                    raise FeatureSetError(f"{name}: {m}/{s} features must be 2-D, got shape {x.shape}")
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
        load_feature_set(tmp)  # validate before publishing
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


# --------------------------------------------------------------------------- loading


def all_finite(x: np.ndarray, rows: int = 4096) -> bool:
    """No NaN/Inf, checked in row chunks so a memory-mapped array is never copied whole."""
    return all(np.isfinite(x[i : i + rows]).all() for i in range(0, len(x), rows))


def _fail(path: Path, fld: str, msg: str):
    raise FeatureSetError(f"{path}: {fld}: {msg}")


def load_feature_set(path: str | os.PathLike, *, mmap: bool = True, verify: bool = True) -> FeatureSet:
    """Load and validate a feature-set directory.

    Checks: manifest fields; every array present with the recorded shape/dtype and sha256
    (``verify``); dims and counts against the manifest; labels in range (multi-hot: 0/1);
    no NaN or Inf in features. Raises :class:`FeatureSetError` naming the file and field.
    """
    path = Path(path)
    mpath = path / "manifest.json"
    if not path.is_dir():
        raise FeatureSetError(f"{path}: not a feature-set directory (no such directory)")
    if not mpath.is_file():
        raise FeatureSetError(f"{mpath}: missing (not a feature-set directory)")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FeatureSetError(f"{mpath}: not valid JSON ({exc})") from None
    for key in ("format", "name", "modalities", "classes", "label_kind", "pairing", "provenance", "arrays"):
        if key not in manifest:
            _fail(mpath, key, "missing field")
    if manifest["format"] != FORMAT:
        _fail(mpath, "format", f"expected {FORMAT!r}, got {manifest['format']!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        _fail(mpath, "format_version", f"unsupported {manifest.get('format_version')!r}")
    if manifest["label_kind"] not in LABEL_KINDS:
        _fail(mpath, "label_kind", f"must be one of {LABEL_KINDS}")
    if manifest["pairing"] not in PAIRINGS:
        _fail(mpath, "pairing", f"must be one of {PAIRINGS}")
    if not manifest["modalities"]:
        _fail(mpath, "modalities", "empty")
    n_classes = len(manifest["classes"])
    if n_classes < 1:
        _fail(mpath, "classes", "empty")

    arrays: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    for m, info in manifest["modalities"].items():
        dim = info.get("dim")
        counts = info.get("counts", {})
        for s in SPLITS:
            if s not in counts:
                _fail(mpath, f"modalities.{m}.counts.{s}", "missing")
            loaded = []
            for kind in ("x", "y"):
                fname = array_filename(m, s, kind)
                fpath = path / fname
                rec = manifest["arrays"].get(fname)
                if rec is None:
                    _fail(mpath, f"arrays.{fname}", "missing entry")
                if not fpath.is_file():
                    _fail(fpath, "file", "missing")
                if verify and sha256_file(fpath) != rec.get("sha256"):
                    _fail(fpath, "sha256", "does not match manifest (file changed or corrupt)")
                try:
                    arr = np.load(fpath, mmap_mode="r" if mmap else None, allow_pickle=False)
                except (ValueError, OSError, EOFError) as exc:
                    _fail(fpath, "file", f"unreadable .npy ({' '.join(str(exc).split())})")
                if list(arr.shape) != list(rec.get("shape", [])) or str(arr.dtype) != rec.get("dtype"):
                    _fail(fpath, "shape", f"{arr.shape}/{arr.dtype} differs from manifest {rec.get('shape')}/{rec.get('dtype')}")
                loaded.append(arr)
            x, y = loaded
            xpath, ypath = path / array_filename(m, s, "x"), path / array_filename(m, s, "y")
            if x.ndim != 2 or x.shape[1] != dim:
                _fail(xpath, "dim", f"features have shape {x.shape}, manifest dim is {dim}")
            if x.shape[0] != counts[s]:
                _fail(xpath, "count", f"{x.shape[0]} rows, manifest says {counts[s]}")
            if y.shape[0] != x.shape[0]:
                _fail(ypath, "count", f"{y.shape[0]} labels for {x.shape[0]} feature rows")
            if x.size and not all_finite(x):
                _fail(xpath, "features", "contain NaN or Inf")
            if manifest["label_kind"] == "single":
                if y.ndim != 1:
                    _fail(ypath, "labels", f"single-label data needs shape (N,), got {y.shape}")
                if y.size and (y.min() < 0 or y.max() >= n_classes):
                    _fail(ypath, "labels", f"out of range [0, {n_classes}) (min {y.min()}, max {y.max()})")
            else:
                if y.ndim != 2 or y.shape[1] != n_classes:
                    _fail(ypath, "labels", f"multi-hot data needs shape (N, {n_classes}), got {y.shape}")
                if y.size and not np.isin(y, (0, 1)).all():
                    _fail(ypath, "labels", "multi-hot labels must be 0/1")
            arrays[(m, s)] = (x, y)
    if manifest["pairing"] == "instance":
        for s in SPLITS:
            n = {arrays[(m, s)][0].shape[0] for m in manifest["modalities"]}
            if len(n) > 1:
                _fail(mpath, "pairing", f"instance-paired but {s} counts differ {sorted(n)}")
    return FeatureSet(path, manifest, arrays)
