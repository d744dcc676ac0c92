"""Checks of what an index reads: the fields of ``index.json``, and the bounds of every build and search parameter."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cvs_tf.utils.fields import Fields

KINDS = ("exact", "ivf", "hnsw")


class RetrievalError(ValueError):
    """An index is missing, corrupt, built for another export, or queried with the wrong input."""


#: allowed range of each build/search parameter (docs/serving.md); faiss takes 32-bit ints, and an HNSW
#: graph with M = 1 crashes it, while M links per node cost 8 M bytes per item
BOUNDS = {"nlist": (1, 65536), "nprobe": (1, 65536), "hnsw_m": (2, 256), "ef_construction": (1, 4096),
          "ef_search": (1, 4096), "k": (1, 100_000), "train_size": (1, 2**31 - 1), "seed": (0, 2**32 - 1)}
#: the files an index directory may hold
FILES = ("faiss.index", "ids.npy", "labels.npy")


def check_bound(name: str, value) -> int:
    """``value`` as an int within ``BOUNDS[name]``; RetrievalError naming it otherwise."""
    low, high = BOUNDS[name]
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise RetrievalError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    if not low <= value <= high:
        raise RetrievalError(f"{name} must be in [{low}, {high}], got {value}")
    return int(value)


def check_bounds(**values) -> None:
    """:func:`check_bound` for every given (not None) parameter."""
    for name, value in values.items():
        if value is not None:
            check_bound(name, value)


def check_index_manifest(mpath: Path, manifest: dict) -> None:
    """Every field :meth:`Index.load` reads has the right JSON type and range (RetrievalError naming the file
    and field); the files it lists are the index's own (no path leads out of the directory)."""
    f = Fields(mpath, manifest, error=RetrievalError)
    kind = f.get("kind", "string", choices=KINDS)
    f.get("dim", "integer", low=1)
    count = f.get("count", "integer", low=0)
    f.get("modality", "string", "null", required=False)
    f.strings("classes", required=False, nullable=True)
    f.get("label_kind", "string", "null", required=False, choices=("single", "multi"))
    files = f.sub("files")
    for name in ("faiss.index", "ids.npy"):
        if name not in files.obj:
            files.fail(name, "missing entry")
    for name in files.obj:
        if name not in FILES:
            files.fail(name, f"not a file of an index (the files are {', '.join(FILES)})")
        rec = files.sub(name)
        rec.get("sha256", "string")
        rec.get("bytes", "integer", low=0)
    params = f.sub("params", required=False, nullable=True)
    if params is not None:
        for name, (low, high) in BOUNDS.items():
            params.get(name, "integer", required=name == "nlist" and kind == "ivf", low=low,
                       high=min(high, count) if name == "nlist" else high)
        if "nprobe" in params.obj and "nlist" in params.obj and params.obj["nprobe"] > params.obj["nlist"]:
            params.fail("nprobe", f"must be in [1, nlist = {params.obj['nlist']}], got {params.obj['nprobe']}")
    elif kind == "ivf":
        f.fail("params", "missing (an ivf index records nlist)")
    exp = f.sub("export", required=False, nullable=True)
    if exp is not None:
        exp.get("sha256", "string")
        exp.get("dim", "integer", low=1)
        exp.get("path_from_index", "string", required=False)
        exp.get("stage", "integer", "null", required=False)
        for key in ("run", "space"):
            exp.get(key, "string", "null", required=False)
    src = f.sub("source", required=False, nullable=True)
    if src is not None:
        for key in ("type", "path_from_index", "name", "dataset", "manifest_sha256", "split", "file"):
            src.get(key, "string", "null", required=False)
