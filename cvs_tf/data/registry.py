"""Resolve a dataset name or directory to a loaded feature set (embedded sets, $CVS_TF_DATA, paths)."""

from __future__ import annotations

import os
from pathlib import Path

from cvs_tf.data.converters import CONVERTERS
from cvs_tf.data.store import FeatureSet, FeatureSetError, load_feature_set
from cvs_tf.data.synthetic import NAMES as SYNTH_NAMES  # the benchmarks with a synthetic stand-in

DEFAULT_DATASET = "tux12"
EMBEDDED_ROOT = Path(__file__).resolve().parent.parent / "datasets"
DATA_ENV = "CVS_TF_DATA"


def embedded_datasets() -> list[str]:
    """Names of the real feature sets shipped inside the package."""
    if not EMBEDDED_ROOT.is_dir():
        return []
    return sorted(p.name for p in EMBEDDED_ROOT.iterdir() if (p / "manifest.json").is_file())


def dataset_path(name_or_dir: str | os.PathLike | None = None) -> Path:
    """Where a dataset lives.

    Order: an existing directory path; ``$CVS_TF_DATA/<name>``; an embedded set
    (``cvs_tf/datasets/<name>``). ``None`` means the default embedded set (Tux-12).
    """
    spec = str(name_or_dir) if name_or_dir is not None else DEFAULT_DATASET
    p = Path(spec).expanduser()
    if p.is_dir():
        return p
    root = os.environ.get(DATA_ENV)
    if root and (Path(root) / spec).is_dir():
        return Path(root) / spec
    if (EMBEDDED_ROOT / spec).is_dir():
        return EMBEDDED_ROOT / spec
    ways = []
    if spec in SYNTH_NAMES:
        ways.append(f"make a synthetic stand-in with `python -m cvs_tf.data synth {spec} --out DIR`")
    if spec in CONVERTERS:
        ways.append(f"convert the real files with `python -m cvs_tf.data convert {spec} SRC --out DIR`")
    hint = f"; {' or '.join(ways)}" if ways else ""
    known = ", ".join(embedded_datasets()) or "none"
    raise FeatureSetError(
        f"{spec}: no such dataset directory, not under ${DATA_ENV}, and not an embedded set ({known}){hint}"
    )


def find_dataset(sha256: str | None, *, path: str | os.PathLike | None = None,
                 names: list[str | None] | tuple = ()) -> tuple[FeatureSet, Path]:
    """The feature set a run was trained on, found again and checked by its manifest sha256.

    Looks at ``path`` (the resolved absolute directory a run recorded), then each of ``names``
    as :func:`dataset_path` resolves it (a directory, ``$CVS_TF_DATA/<name>``, an embedded set).
    The first set whose ``manifest_sha256`` equals ``sha256`` is returned with its directory
    (``sha256=None`` accepts the first set found). A set found with another sha256 is a one-line
    :class:`FeatureSetError` naming both values; none found says where it looked.
    """
    candidates: list[Path] = []
    if path:
        candidates.append(Path(path).expanduser())
    for name in names:
        if not name:
            continue
        try:
            candidates.append(dataset_path(name))
        except FeatureSetError:
            pass
    seen, mismatch, broken = set(), None, None
    for c in candidates:
        key = os.path.realpath(c)
        if key in seen or not c.is_dir():
            continue
        seen.add(key)
        try:
            fs = load_feature_set(c)
        except FeatureSetError as exc:
            broken = broken or exc
            continue
        if sha256 is None or fs.manifest_sha256 == sha256:
            return fs, c
        mismatch = mismatch or (c, fs.manifest_sha256)
    if mismatch is not None:
        where, got = mismatch
        raise FeatureSetError(f"{where}: dataset manifest sha256 is {got}, but the run was trained on {sha256} "
                              "(the data changed since; restore it or start a new run)")
    if broken is not None:
        raise broken
    looked = ", ".join(dict.fromkeys(str(p) for p in [path, *names] if p)) or "nothing"
    raise FeatureSetError(f"dataset of the run not found (looked for {looked}; set ${DATA_ENV} to the folder holding it)")


def load_dataset(name_or_dir: str | os.PathLike | None = None, **kwargs) -> FeatureSet:
    """Load a dataset by name or directory (see :func:`dataset_path`)."""
    return load_feature_set(dataset_path(name_or_dir), **kwargs)
