"""Read one file of the generic import layout (``.npy`` with side files, ``.npz``, Parquet): checked features, labels and ids.

Every defect is a one-line :class:`~cvs_tf.data.store.FeatureSetError` ``FILE: KEY: what is wrong``
(missing file or key, not numeric, wrong shape, NaN/Inf, labels out of range, truncated file).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cvs_tf.data.manifest import as_labels
from cvs_tf.data.store import FeatureSetError


def layout_error(path, key: str, msg: str) -> FeatureSetError:
    """The one-line error ``PATH: KEY: msg``."""
    return FeatureSetError(f"{path}: {key}: {msg}")


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


@dataclass
class Part:
    """One modality and split as read: features (float32), labels, ids (or None), the files read."""

    x: np.ndarray
    y: np.ndarray
    ids: list[str] | None
    files: list[Path]


# --------------------------------------------------------------------------- reading one file


def _load_npy(path: Path, key: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r")
    except ValueError as exc:
        if "pickle" in str(exc):
            raise layout_error(path, key, "not a numeric array (object array: save numbers, not Python objects)") from None
        raise layout_error(path, key, f"cannot read (truncated or corrupt file: {_short(exc)})") from None
    except Exception as exc:  # numpy raises several types on a cut-off or foreign file
        raise layout_error(path, key, f"cannot read (truncated or corrupt file: {_short(exc)})") from None


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError as exc:
        if "pickle" in str(exc):
            raise layout_error(path, "arrays", "not a numeric array (object array: save numbers and strings, not Python objects)") from None
        raise layout_error(path, "arrays", f"cannot read (truncated or corrupt file: {_short(exc)})") from None
    except Exception as exc:  # zipfile/zlib/numpy raise many types on a damaged archive
        raise layout_error(path, "arrays", f"cannot read (truncated or corrupt file: {_short(exc)})") from None


def _list_column(path: Path, table, name: str) -> np.ndarray:
    import pyarrow as pa

    col = table.column(name).combine_chunks()
    if col.null_count:
        raise layout_error(path, name, f"{col.null_count} missing (null) values")
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type):
        lengths = np.asarray(col.value_lengths())
        if len(lengths) and (lengths != lengths[0]).any():
            raise layout_error(path, name, f"wrong shape: rows have {lengths.min()} to {lengths.max()} values (all need the same)")
        values = col.flatten()
        if values.null_count:
            raise layout_error(path, name, f"{values.null_count} missing (null) values inside the lists")
        return values.to_numpy(zero_copy_only=False).reshape(len(col), int(lengths[0]) if len(lengths) else 0)
    return col.to_numpy(zero_copy_only=False)


def _read_parquet(path: Path) -> dict[str, np.ndarray]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise layout_error(path, "file", "reading Parquet needs pyarrow (pip install pyarrow), or save the file as .npz") from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError on a damaged file
        raise layout_error(path, "file", f"cannot read (truncated or corrupt file: {_short(exc)})") from None
    return {name: _list_column(path, table, name) for name in table.column_names}


def _features(path: Path, key: str, raw: np.ndarray) -> np.ndarray:
    """A finite (N, d) float32 matrix with N >= 1 and d >= 1."""
    if raw.dtype.kind not in "iuf":
        raise layout_error(path, key, f"not a numeric array (dtype {raw.dtype}; features must be real numbers)")
    if raw.ndim != 2:
        raise layout_error(path, key, f"wrong shape {raw.shape}: features must be a 2-D (N, d) matrix")
    if not raw.shape[1]:
        raise layout_error(path, key, f"wrong shape {raw.shape}: no feature columns")
    if not raw.shape[0]:
        raise layout_error(path, key, f"wrong shape {raw.shape}: no items")
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            x = np.asarray(raw, dtype=np.float32)
    except (OSError, ValueError) as exc:  # a memory-mapped file cut off under us
        raise layout_error(path, key, f"cannot read (truncated or corrupt file: {_short(exc)})") from None
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        what = "contains NaN or Inf" if not np.isfinite(raw[row, col]) else "has values beyond float32 range"
        raise layout_error(path, key, f"{what} ({int(bad.sum())} values; first at row {row + 1}, column {col + 1})")
    return x


def _labels(path: Path, key: str, raw: np.ndarray, rows: int, base: int) -> np.ndarray:
    """(N,) 0-based int64 class ids, or (N, C) uint8 multi-hot."""
    try:
        return as_labels(raw, rows, base=base)[0]
    except ValueError as exc:
        raise layout_error(path, key, str(exc)) from None


def _ids(path: Path, key: str, raw, rows: int) -> list[str]:
    ids = [str(v) for v in np.asarray(raw).reshape(-1).tolist()] if not isinstance(raw, list) else raw
    if len(ids) != rows:
        raise layout_error(path, key, f"wrong shape: {len(ids)} ids for {rows} feature rows")
    if any(not i.strip() for i in ids):
        raise layout_error(path, key, f"empty id at row {next(r for r, i in enumerate(ids) if not i.strip()) + 1}")
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = next(i for i in ids if i in seen or seen.add(i))
        raise layout_error(path, key, f"id {dup!r} appears twice")
    return ids


def text_lines(path: Path, key: str) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM (Windows editors) is not part of the first line
    except UnicodeDecodeError:
        raise layout_error(path, key, "not UTF-8 text") from None
    except OSError as exc:
        raise layout_error(path, key, f"cannot read ({_short(exc)})") from None
    return text.splitlines()


def _side_file(root: Path, m: str, split: str, what: str, ext: str) -> Path | None:
    for p in (root / f"{m}.{split}.{what}.{ext}", root / f"{what}.{split}.{ext}"):
        if p.is_file():
            return p
    return None


def read_part(path: Path, m: str, split: str, base: int) -> Part:
    """Features, labels and ids of one modality and split (side files for a ``.npy``)."""
    ext = path.suffix[1:]
    if ext == "npy":
        arrays = {"features": _load_npy(path, "features")}
    else:
        arrays = _read_npz(path) if ext == "npz" else _read_parquet(path)
        if "features" not in arrays:
            raise layout_error(path, "features", f"missing key (file has: {', '.join(arrays) or 'nothing'})")
    x = _features(path, "features", arrays["features"])
    files, where = [path], {"labels": path, "ids": path}
    for what, ext_ in (("labels", "npy"), ("ids", "txt")):
        if what not in arrays and (side := _side_file(path.parent, m, split, what, ext_)):
            arrays[what] = _load_npy(side, what) if ext_ == "npy" else text_lines(side, what)
            files.append(side)
            where[what] = side
    if "labels" not in arrays:
        hint = f"{m}.{split}.labels.npy or labels.{split}.npy" if ext == "npy" else f"a labels {'array' if ext == 'npz' else 'column'}"
        raise layout_error(path, "labels", f"missing (give {hint})")
    y = _labels(where["labels"], "labels", arrays["labels"], len(x), base)
    ids = _ids(where["ids"], "ids", arrays["ids"], len(x)) if "ids" in arrays else None
    return Part(x, y, ids, files)
