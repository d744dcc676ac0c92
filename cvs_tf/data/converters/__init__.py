"""Converters from the official feature-file layouts to the feature-set store (``python -m cvs_tf.data convert``).

Each converter module (``xmedia``, ``xmedianet``, ``dscmr`` for Pascal Sentence and NUS-WIDE,
``cub``, ``wikipedia``) has a ``read(src, **options) -> Conversion`` that reads and validates
the source files (MATLAB ones through :mod:`~cvs_tf.data.converters.matfile`) and raises
:class:`~cvs_tf.data.store.FeatureSetError` (``<file>: <key>: ...``) on bad input, including
labels beyond the dataset's documented class count (corrupt data, unless
``allow_extra_classes`` is given for a variant with more classes; see
:func:`~cvs_tf.data.converters.common.check_class_count`). :func:`convert` then carves the
validation split off train (seeded, stratified, never from test), records provenance and
writes the set atomically with :func:`~cvs_tf.data.store.save_feature_set`. Converters never
create the output directory themselves, so a failed conversion leaves nothing behind.
:data:`CONVERTERS` is the one list of convertible dataset names and of the options each
offers. The layouts are described in ``docs/data.md``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cvs_tf.data.converters.common import Conversion
from cvs_tf.data.store import (
    FeatureSetError,
    carve_validation,
    check_fraction,
    save_feature_set,
    sha256_file,
)


@dataclass(frozen=True)
class Converter:
    """One convertible dataset: the module (in this package) whose ``read`` reads it, and the
    ``read`` options it offers besides ``allow_extra_classes`` (``multi_label``, ``variant``)."""

    module: str
    options: tuple[str, ...] = ()


CONVERTERS = {
    "xmedia": Converter("xmedia"),
    "xmedianet": Converter("xmedianet", ("variant",)),
    "pascal": Converter("dscmr"),
    "nuswide": Converter("dscmr", ("multi_label",)),
    "cub": Converter("cub"),
    "wikipedia": Converter("wikipedia"),
}


def offering(option: str) -> list[str]:
    """The dataset names whose converter offers ``option``."""
    return [n for n, c in CONVERTERS.items() if option in c.options]


ROWS = "\0rows"  # pseudo-modality carrying source row indices through the validation carve-out


def write(conv: Conversion, out: str | Path, *, val_fraction: float = 0.1, seed: int = 0) -> Path:
    """Carve validation (none when ``val_fraction`` is 0), record provenance and write ``conv`` atomically at ``out``."""
    check_fraction(val_fraction)
    paired = conv.pairing == "instance"
    splits = dict(conv.splits)
    if paired and conv.row_ids:
        # Instance-paired carving takes the same rows from every modality, so a column of row
        # indices carved in the same call says which source rows went to train and to val.
        first = next(iter(conv.splits.values()))
        splits[ROWS] = {s: (np.arange(len(first[s][0]))[:, None], first[s][1]) for s in ("train", "test")}
    data = carve_validation(splits, val_fraction, seed, paired=paired)
    extra = dict(conv.extra)
    rows = data.pop(ROWS, None)
    if rows is not None:
        extra["item_ids"] = {
            name: {
                s: [ids["test" if s == "test" else "train"][int(i)] for i in rows[s][0][:, 0]]
                for s in ("train", "val", "test")
            }
            for name, ids in conv.row_ids.items()
        }
    provenance = {
        "synthetic": False,
        "converter": conv.converter,
        "converter_version": conv.version,
        "source_files": conv.source_names(),
        "source_sha256": {n: sha256_file(p) for n, p in zip(conv.source_names(), conv.sources)},
        "source_format": conv.source_format,
        "label_base": conv.label_base,
        "notes": list(conv.notes),
    }
    validation = {"fraction": val_fraction, "seed": seed, "stratified": True, "carved_from": "train"}
    return save_feature_set(
        out, conv.name, data, conv.classes, label_kind=conv.label_kind, pairing=conv.pairing,
        provenance=provenance, validation=validation, feature_dtype="float32", extra=extra,
    )


def read(name: str, src: str | Path, **options) -> Conversion:
    """Read and validate the official files of dataset ``name`` (see :data:`CONVERTERS`)."""
    if name not in CONVERTERS:
        raise FeatureSetError(f"{name}: unknown dataset (choose from {', '.join(CONVERTERS)})")
    module = importlib.import_module(f"{__name__}.{CONVERTERS[name].module}")
    return module.read(src, name=name, **options)


def convert(
    name: str,
    src: str | Path,
    out: str | Path,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    report: Callable[[str], None] | None = print,
    **options,
) -> Path:
    """Read, validate and write one dataset; ``report`` receives one line per finding.

    ``val_fraction`` in [0, 1) (0: no validation split); ``options`` go to the converter's
    ``read`` (``allow_extra_classes``, ``multi_label``, ``variant``).
    """
    check_fraction(val_fraction)
    out = Path(out)
    if out.exists():
        raise FeatureSetError(f"{out}: output directory already exists (remove it first)")
    conv = read(name, src, **options)
    if report is not None:
        for note in conv.notes:
            report(f"{name}: {note}")
    return write(conv, out, val_fraction=val_fraction, seed=seed)


__all__ = ["CONVERTERS", "Conversion", "Converter", "convert", "offering", "read", "write"]
