"""``python -m cvs_tf.data import DIR``: own extracted features in a generic layout (one file per modality and split) to a feature set.

Layout of ``DIR`` (docs/serving.md, "Own features in")::

    <modality>.<split>.npy       features (N, d); labels in <modality>.<split>.labels.npy or labels.<split>.npy,
                                 optional ids in <modality>.<split>.ids.txt or ids.<split>.txt (one per line)
    <modality>.<split>.npz       arrays ``features`` (N, d), ``labels`` (N,) | (N, C), optional ``ids`` (N,)
    <modality>.<split>.parquet   columns ``features`` (lists of d numbers), ``labels``, optional ``ids`` (needs pyarrow)
    classes.txt                  optional: one class name per line; label c names line c

Splits are ``train`` and ``test`` (every modality needs both) and optionally ``val`` (for every
modality, or none: then ``val`` is carved from train). Labels are class ids (0-based unless
``label_base`` says 1) or (N, C) 0/1 multi-hot. Ids pair the modalities' rows item by item
(instance pairing); without ids the set is paired by class only, unless ``pairing="instance"``
pairs row i of every modality. Every defect is a one-line :class:`FeatureSetError`
``FILE: KEY: what is wrong``; the set is written atomically by :func:`save_feature_set`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cvs_tf.data.import_files import Part, layout_error, read_part, text_lines
from cvs_tf.data.manifest import FORMAT as MANIFEST_FORMAT
from cvs_tf.data.store import (
    SPLITS,
    FeatureSetError,
    carve_validation,
    check_fraction,
    modality_name_error,
    order_modalities,
    save_feature_set,
    sha256_file,
)
from cvs_tf.utils.output import OutputDir, OutputKind

VERSION = "1"
FORMATS = ("npy", "npz", "parquet")
#: a feature set as an output (import has no --overwrite: only its lock and checks are used)
FEATURE_SET_KIND = OutputKind("feature set", "manifest.json", MANIFEST_FORMAT, lambda manifest: list(manifest["arrays"]))
RESERVED = ("labels", "ids", "classes")
PAIRINGS = ("auto", "instance", "class")
DEFAULT_VAL_FRACTION = 0.1
_FILE = re.compile(r"(?P<modality>[^.]+)\.(?P<split>train|val|test)\.(?P<ext>npy|npz|parquet)")


@dataclass
class Layout:
    """What :func:`read_layout` found: parts per modality and split, classes, label kind, pairing."""

    parts: dict[str, dict[str, Part]]
    classes: list[str]
    label_kind: str
    pairing: str
    notes: list[str] = field(default_factory=list)

    @property
    def has_val(self) -> bool:
        return any("val" in p for p in self.parts.values())

    def files(self) -> list[Path]:
        seen = {f: None for per in self.parts.values() for p in per.values() for f in p.files}
        return list(seen)


# --------------------------------------------------------------------------- finding the files


def scan(root: Path) -> dict[str, dict[str, Path]]:
    """``modality -> split -> feature file``; refuses duplicates, bad names and missing splits."""
    if not root.is_dir():
        raise layout_error(root, "layout", "not a directory (give the folder holding <modality>.<split>.npy|npz|parquet files)")
    found: dict[str, dict[str, Path]] = {}
    for p in sorted(root.iterdir()):
        match = _FILE.fullmatch(p.name)
        if not match or match["modality"] in RESERVED:
            continue
        m, split = match["modality"], match["split"]
        if why := modality_name_error(m):
            raise layout_error(p, "modality", why)
        if split in found.setdefault(m, {}):
            raise layout_error(p, "file", f"two feature files for {m} {split} ({found[m][split].name} too); keep one")
        found[m][split] = p
    if not found:
        if (root / "manifest.json").is_file() or any(root.glob("*.train.x.npy")):
            raise layout_error(root, "layout", "this is already a cvs_tf feature set (<modality>.<split>.x.npy and "
                               ".y.npy); use it as it is: --dataset DIR (python -m cvs_tf.data inspect DIR describes it)")
        raise layout_error(root, "layout", "no feature files <modality>.<split>.npy|npz|parquet (split: train, val, test)")
    for m, per in found.items():
        missing = [s for s in ("train", "test") if s not in per]
        if missing:
            raise layout_error(root / f"{m}.{missing[0]}.npy", "file", f"file not found (modality {m} needs train and test files)")
    with_val = sorted(m for m, per in found.items() if "val" in per)
    if with_val and len(with_val) != len(found):
        lacking = sorted(set(found) - set(with_val))
        raise layout_error(root / f"{lacking[0]}.val.npy", "file",
                   f"file not found ({', '.join(with_val)} have val files: give val for every modality or for none)")
    if len(found) < 2:
        raise layout_error(root, "layout", f"only one modality ({next(iter(found))}); a cross-modal space needs two or more")
    return found


# --------------------------------------------------------------------------- the whole layout


def read_classes(root: Path) -> list[str] | None:
    """Names from ``classes.txt`` (one per line), or None when the file is absent."""
    path = root / "classes.txt"
    if not path.is_file():
        return None
    names = [line.strip() for line in text_lines(path, "classes")]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise layout_error(path, "classes", "no class names (one per line)")
    if "" in names:
        raise layout_error(path, "classes", f"empty class name at line {names.index('') + 1}")
    if len(set(names)) != len(names):
        raise layout_error(path, "classes", f"class {next(n for i, n in enumerate(names) if n in names[:i])!r} is named twice")
    return names


def _label_file(part: Part) -> Path:
    return next((f for f in part.files if f.name.endswith(".labels.npy") or f.name.startswith("labels.")), part.files[0])


def resolve_classes(parts: dict[str, dict[str, Part]], names: list[str] | None, root: Path, base: int):
    """``(classes, label_kind)``: the class list the labels index, checked against ``classes.txt``."""
    flat = [p for per in parts.values() for p in per.values()]
    multi = [p for p in flat if p.y.ndim == 2]
    if multi and len(multi) != len(flat):
        single = next(p for p in flat if p.y.ndim == 1)
        raise layout_error(_label_file(multi[0]), "labels", f"multi-hot (N, C) here but class ids in {_label_file(single).name}")
    if multi:
        widths = sorted({p.y.shape[1] for p in multi})
        if len(widths) > 1:
            raise layout_error(_label_file(multi[0]), "labels", f"wrong shape: multi-hot files have {widths} columns (need one C)")
        if names and len(names) != widths[0]:
            raise layout_error(root / "classes.txt", "classes", f"{len(names)} names for {widths[0]} multi-hot label columns")
        n = widths[0]
    else:
        top = max(flat, key=lambda p: int(p.y.max()))
        found, n_items = int(top.y.max()), sum(len(p.y) for p in flat)
        if names and found >= len(names):
            raise layout_error(_label_file(top), "labels",
                       f"labels out of range: found {found + base}, but classes.txt names {len(names)} classes")
        if not names and found + 1 > n_items:
            raise layout_error(_label_file(top), "labels", f"labels out of range: found {found + base}: {found + 1} classes for "
                       f"only {n_items} items (corrupt labels; name the classes in classes.txt)")
        n = len(names) if names else found + 1
    width = max(2, len(str(n - 1 + base)))
    return (names or [f"class{c + base:0{width}d}" for c in range(n)]), ("multi" if multi else "single")


def _align(ref: Part, part: Part, ref_name: str) -> Part:
    """``part`` with its rows in ``ref``'s item order (by ids, else by row), labels checked equal."""
    where = part.files[0]
    if ref.ids is not None:
        index = {i: r for r, i in enumerate(part.ids)}
        missing = [i for i in ref.ids if i not in index]
        extra = len(part.ids) - (len(ref.ids) - len(missing))
        if missing or extra:
            what = f"id {missing[0]!r} of {ref_name} is missing here" if missing else f"{extra} ids that {ref_name} lacks"
            raise layout_error(where, "ids", f"{what} (instance pairing needs the same items in every modality; "
                       "--pairing class pairs by class only)")
        rows = np.array([index[i] for i in ref.ids], dtype=np.int64)
        part = Part(part.x[rows], part.y[rows], list(ref.ids), part.files)
    elif len(part.x) != len(ref.x):
        raise layout_error(where, "features", f"wrong shape: {len(part.x)} rows, but {ref_name} has {len(ref.x)} (pairing by "
                   "row needs equal counts; give ids, or --pairing class)")
    differ = np.flatnonzero((part.y != ref.y).reshape(len(part.y), -1).any(axis=1))
    if len(differ):
        r = int(differ[0])
        item = repr(ref.ids[r]) if ref.ids is not None else f"row {r + 1}"
        raise layout_error(_label_file(part), "labels", f"item {item} has label {part.y[r].tolist()} here but "
                   f"{ref.y[r].tolist()} in {ref_name} (an instance-paired item has one label)")
    return part


def pair(parts: dict[str, dict[str, Part]], pairing: str) -> str:
    """Resolve ``auto`` pairing and, for instance pairing, align every modality's rows to the first's."""
    if pairing not in PAIRINGS:
        raise FeatureSetError(f"pairing: must be one of {', '.join(PAIRINGS)}, got {pairing!r}")
    for m, per in parts.items():
        given = [s for s, p in per.items() if p.ids is not None]
        if given and len(given) != len(per):
            lacking = next(p for p in per.values() if p.ids is None)
            raise layout_error(lacking.files[0], "ids", f"missing ({m} has ids in its {', '.join(given)} files: give them for every split)")
    with_ids = [m for m, per in parts.items() if next(iter(per.values())).ids is not None]
    if pairing == "auto":
        pairing = "instance" if len(with_ids) == len(parts) else "class"
    if pairing == "class":
        return pairing
    if with_ids and len(with_ids) != len(parts):
        lacking = next(m for m in parts if m not in with_ids)
        raise layout_error(parts[lacking]["train"].files[0], "ids", f"missing ({', '.join(with_ids)} have ids: "
                   "instance pairing needs them for every modality or for none)")
    first, *others = parts
    for split, ref in parts[first].items():
        for m in others:
            parts[m][split] = _align(ref, parts[m][split], ref.files[0].name)
    return pairing


def check_id_overlap(parts: dict[str, dict[str, Part]]) -> None:
    """Refuse an item id given in two splits of one modality (a test item that is also a train item leaks)."""
    for m, per in parts.items():
        seen: dict[str, str] = {}
        for split, part in per.items():
            for i in part.ids or ():
                if seen.setdefault(i, split) != split:
                    raise layout_error(next((f for f in part.files if f.suffix == ".txt"), part.files[0]), "ids",
                                       f"id {i!r} is both a {seen[i]} and a {split} item of {m} (the splits would "
                                       "share items; --allow-id-overlap if they are really different items)")


def read_layout(src: str | Path, *, pairing: str = "auto", label_base: int = 0,
                allow_id_overlap: bool = False) -> Layout:
    """Read and validate every file of the layout at ``src`` (nothing is written); an id in two splits of a
    modality is refused unless ``allow_id_overlap``."""
    if label_base not in (0, 1):
        raise FeatureSetError(f"label_base: must be 0 or 1, got {label_base!r}")
    root = Path(src)
    files = scan(root)
    names = read_classes(root)
    parts = {m: {s: read_part(files[m][s], m, s, label_base) for s in SPLITS if s in files[m]}
             for m in order_modalities(files)}
    for m, per in parts.items():
        dims = {s: p.x.shape[1] for s, p in per.items()}
        if len(set(dims.values())) > 1:
            s = next(s for s in per if dims[s] != dims["train"])
            raise layout_error(per[s].files[0], "features", f"wrong shape: feature dim {dims[s]}, {m} train has {dims['train']}")
    if not allow_id_overlap:
        check_id_overlap(parts)
    classes, kind = resolve_classes(parts, names, root, label_base)
    pairing = pair(parts, pairing)
    notes = [f"{m}: " + " / ".join(f"{len(p.x)} {s}" for s, p in per.items()) + f" items, dim {per['train'].x.shape[1]}"
             for m, per in parts.items()]
    notes.append({"class": "paired by class only (no ids)", "instance": "instance-paired "
                  + ("by ids" if parts[next(iter(parts))]["train"].ids is not None else "by row order")}[pairing])
    if kind == "single":
        notes += [f"{m} {s}: {len(classes) - len(np.unique(p.y))} of {len(classes)} classes have no items"
                  for m, per in parts.items() for s, p in per.items() if len(np.unique(p.y)) < len(classes)]
    return Layout(parts, classes, kind, pairing, notes)


def _gather(layout: Layout, val_fraction: float | None, seed: int):
    """``(data, item_ids, validation)`` for :func:`save_feature_set`: given or carved ``val``."""
    parts = layout.parts
    if layout.has_val:
        if val_fraction is not None:
            raise FeatureSetError("--val-fraction: the layout has its own val files; drop the option or the val files")
        rows = {m: {s: (s, np.arange(len(p.x))) for s, p in per.items()} for m, per in parts.items()}
        validation = {"fraction": None, "note": "provided by the source (val files of the layout)"}
    else:
        fraction = DEFAULT_VAL_FRACTION if val_fraction is None else val_fraction
        check_fraction(fraction)
        index = {m: {s: (np.arange(len(per[s].x))[:, None], per[s].y) for s in ("train", "test")} for m, per in parts.items()}
        carved = carve_validation(index, fraction, seed, paired=layout.pairing == "instance")
        rows = {m: {s: ("test" if s == "test" else "train", c[s][0][:, 0]) for s in SPLITS} for m, c in carved.items()}
        validation = {"fraction": fraction, "seed": seed, "stratified": True, "carved_from": "train"}
    data = {m: {s: (parts[m][src].x[r], parts[m][src].y[r]) for s, (src, r) in per.items()} for m, per in rows.items()}
    ids = {m: {s: [parts[m][src].ids[i] for i in r] for s, (src, r) in per.items()}
           for m, per in rows.items() if parts[m]["train"].ids is not None}
    if layout.pairing == "instance" and ids:
        ids = {"id": next(iter(ids.values()))}
    else:
        ids = {f"{m}_id": v for m, v in ids.items()}
    return data, ids, validation


def import_layout(src: str | Path, out: str | Path, *, val_fraction: float | None = None, seed: int = 0,
                  pairing: str = "auto", label_base: int = 0, name: str | None = None,
                  report: Callable[[str], None] | None = print, allow_id_overlap: bool = False,
                  provenance: dict | None = None) -> Path:
    """Read, validate and write the layout at ``src`` as a feature set at ``out`` (atomically).

    ``val_fraction`` (default 0.1; refused when the layout has val files) and ``seed`` define the
    validation carve-out; ``pairing`` is ``auto`` (instance with ids, else class), ``instance`` or ``class``;
    ``allow_id_overlap`` accepts an id in two splits of one modality (refused by default);
    ``provenance``: fields that replace or add to the recorded provenance (``extract`` names its sources).
    """
    if val_fraction is not None:
        check_fraction(val_fraction)
    out, root = Path(out), Path(src)
    if out.exists():
        raise FeatureSetError(f"{out}: output directory already exists (remove it first)")
    with OutputDir(out, FEATURE_SET_KIND, error=FeatureSetError):  # one import into --out at a time
        return _import(root, out, val_fraction=val_fraction, seed=seed, pairing=pairing, label_base=label_base,
                       name=name, report=report, allow_id_overlap=allow_id_overlap, provenance=provenance)


def _import(root: Path, out: Path, *, val_fraction, seed, pairing, label_base, name, report,
            allow_id_overlap, provenance=None) -> Path:
    extra_provenance = provenance or {}
    layout = read_layout(root, pairing=pairing, label_base=label_base, allow_id_overlap=allow_id_overlap)
    data, ids, validation = _gather(layout, val_fraction, seed)
    for note in layout.notes if report else ():
        report(f"import: {note}")
    sources = layout.files() + ([root / "classes.txt"] if (root / "classes.txt").is_file() else [])
    provenance = {
        "synthetic": False,
        "converter": "cvs_tf.data.importer",
        "converter_version": VERSION,
        "source_files": [p.name for p in sources],
        "source_sha256": {p.name: sha256_file(p) for p in sources},
        "source_format": "generic layout (" + ", ".join(sorted({p.suffix[1:] for p in sources})) + ")",
        "label_base": label_base,
        "notes": layout.notes,
        **extra_provenance,
    }
    set_name = name or root.resolve().name.lower() or "imported"
    return save_feature_set(out, set_name, data, layout.classes, label_kind=layout.label_kind, pairing=layout.pairing,
                            provenance=provenance, validation=validation, feature_dtype="float32",
                            extra={"item_ids": ids} if ids else None)
