"""What every converter shares: the :class:`Conversion` it returns, and the checks and notes of what it found."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cvs_tf.data.store import FeatureSetError


@dataclass
class Conversion:
    """What a converter read: train/test per modality plus everything the manifest needs.

    ``splits`` maps modality -> {"train": (x, y), "test": (x, y)} with 0-based labels.
    ``row_ids`` (instance-paired sets only) maps a name to one id per source row, as
    {"train": [...], "test": [...]}; they are split like the features and stored in the manifest.
    """

    name: str
    splits: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]
    classes: list[str]
    pairing: str
    converter: str
    version: str
    sources: list[Path]
    source_format: str
    label_kind: str = "single"
    label_base: int | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    row_ids: dict[str, dict[str, list]] = field(default_factory=dict)
    source_root: Path | None = None

    def source_names(self) -> list[str]:
        """Source files relative to ``source_root`` (or bare names): never absolute paths."""
        root = self.source_root
        return [p.relative_to(root).as_posix() if root and p.is_relative_to(root) else p.name for p in self.sources]


def resolve_file(src: str | Path, default_name: str, key: str = "file") -> Path:
    """``src`` itself if it is a file, else ``src/default_name``; error naming the file if absent."""
    src = Path(src)
    if not src.exists():
        raise FeatureSetError(f"{src}: {key}: not found (give {default_name} or the directory holding it)")
    path = src / default_name if src.is_dir() else src
    if not path.is_file():
        raise FeatureSetError(f"{path}: {key}: file not found")
    return path


def class_names(n: int, base: int = 0) -> list[str]:
    """Generic class names that keep the source's label value: ``class01`` is label 1 in a 1-based file."""
    width = len(str(n - 1 + base))
    return [f"class{c + base:0{max(2, width)}d}" for c in range(n)]


def count_notes(found: Mapping[str, dict], expected: Mapping[str, tuple[int, int]], table: str) -> list[str]:
    """One note per modality (counts and dim) plus one per count that differs from the reference table."""
    notes = []
    for m, splits in found.items():
        ntr, nte = len(splits["train"][0]), len(splits["test"][0])
        notes.append(f"{m}: {ntr} train / {nte} test items, dim {splits['train'][0].shape[1]}")
        if m in expected:
            for split, n, want in (("train", ntr, expected[m][0]), ("test", nte, expected[m][1])):
                if n != want:
                    notes.append(f"{m} {split}: the file holds {n} items; {table} says {want}")
    return notes


def dim_notes(found: Mapping[str, dict], expected: Mapping[str, int], what: str) -> list[str]:
    """Notes for feature dimensions that differ from the documented ones (the file's dims are used)."""
    return [
        f"{m}: dim {splits['train'][0].shape[1]} differs from the {what} {expected[m]} (using the file's)"
        for m, splits in found.items()
        if m in expected and splits["train"][0].shape[1] != expected[m]
    ]


def class_coverage_notes(splits: Mapping[str, dict], n_classes: int) -> list[str]:
    """Notes for classes a modality's train or test split never shows (single-label only)."""
    notes = []
    for m, per in splits.items():
        for s in ("train", "test"):
            y = per[s][1]
            if y.ndim == 1 and len(y):
                missing = n_classes - len(np.unique(y))
                if missing:
                    notes.append(f"{m} {s}: {missing} of {n_classes} classes have no items")
    return notes


def num_classes(labels) -> int:
    """Class count of 0-based single labels: the largest label + 1 (1 when there are none)."""
    return 1 + max((int(y.max()) for y in labels if len(y)), default=0)


def largest_label(labels: Mapping[str, np.ndarray]) -> tuple[int, str]:
    """The largest 0-based single label over several label arrays and where it is (``"file: key"``)."""
    best, where = -1, next(iter(labels), "")
    for w, y in labels.items():
        if len(y) and int(y.max()) > best:
            best, where = int(y.max()), w
    return best, where


def check_class_count(n_classes: int, expected: int | None, *, dataset: str, where: str, found: str,
                      n_items: int, allow_extra: bool = False) -> list[str]:
    """Refuse more classes than ``dataset`` documents (``expected``): such labels are corrupt data.

    ``where`` is the ``file: key`` the count comes from, ``found`` says what was found there (e.g.
    ``labels out of range: found 99``). With ``allow_extra`` (``convert --allow-extra-classes``,
    for a variant with more classes) the count is accepted, but never more classes than items.
    Returns the note to report when extra classes were allowed.
    """
    if not expected or n_classes <= expected:
        return []
    if not allow_extra:
        raise FeatureSetError(
            f"{where}: {found}, but {dataset} has {expected} classes "
            "(for a variant with more classes use --allow-extra-classes)"
        )
    if n_classes > n_items:
        raise FeatureSetError(f"{where}: {found}: {n_classes} classes for only {n_items} items (corrupt labels)")
    return [f"{n_classes} classes found; {dataset} has {expected} (allowed by --allow-extra-classes)"]


def found_notes(splits: Mapping[str, dict], n_classes: int, *, counts: Mapping, table: str, dims: Mapping,
                dim_source: str, expected_classes: int | None, dataset: str, paired: bool = False) -> list[str]:
    """The standard report: counts and dims per modality, differences from the reference
    tables, the class count if unexpected, and classes missing from a split (checked on the
    first modality only when ``paired``: they all share its labels)."""
    notes = count_notes(splits, counts, table) + dim_notes(splits, dims, dim_source)
    if expected_classes and n_classes < expected_classes:  # more classes: check_class_count's business
        notes.append(f"{n_classes} classes found; {dataset} has {expected_classes}")
    first = next(iter(splits))
    return notes + class_coverage_notes({first: splits[first]} if paired else splits, n_classes)
