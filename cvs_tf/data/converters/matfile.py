"""Read numeric arrays from MATLAB .mat files, v5 (scipy.io.loadmat) and v7.3 (HDF5 via h5py), with one-line errors.

MATLAB v7.3 files are HDF5 files behind a 512-byte MATLAB header; MATLAB stores arrays
column-major, so h5py returns a MATLAB ``(N, d)`` matrix as ``(d, N)``. :class:`MatFile`
transposes it back, so every caller sees the array as MATLAB shows it, whatever the version.
Every failure is a :class:`~cvs_tf.data.store.FeatureSetError` whose message starts with
``<file>: <key>:`` (missing file, missing key, truncated or corrupt file, non-numeric data,
wrong shape, NaN/Inf, labels out of range).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from cvs_tf.data.store import FeatureSetError

V5 = "MATLAB v5"
V73 = "MATLAB v7.3 (HDF5)"


def _err(path, key, msg) -> FeatureSetError:
    return FeatureSetError(f"{path}: {key}: {msg}")


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


class MatFile:
    """One .mat file, opened lazily; :meth:`array` returns one variable as a numpy array.

    ``keys()`` lists the variable names; ``version`` is :data:`V5` or :data:`V73`.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._version: str | None = None
        self._keys: list[str] | None = None
        self._v5_checked = False

    # ------------------------------------------------------------------ format detection
    def _detect(self, key: str) -> str:
        if self._version is not None:
            return self._version
        if not self.path.is_file():
            raise _err(self.path, key, "file not found")
        import h5py

        try:
            is_h5 = h5py.is_hdf5(str(self.path))
        except OSError as exc:
            raise _err(self.path, key, f"cannot read file ({_short(exc)})") from None
        if is_h5:
            self._version = V73
            return self._version
        head = self.path.read_bytes()[:128]
        if len(head) < 128:
            raise _err(self.path, key, f"not a MATLAB file (only {len(head)} bytes; truncated?)")
        if head[124:126] == b"\x00\x02" or head[124:126] == b"\x02\x00":
            # a v7.3 header but no readable HDF5 body behind it
            raise _err(self.path, key, "MATLAB v7.3 header but the HDF5 body is unreadable (truncated or corrupt)")
        if head[126:128] not in (b"IM", b"MI"):
            raise _err(self.path, key, "not a MATLAB v5/v7.3 .mat file (bad header)")
        self._version = V5
        return self._version

    @property
    def version(self) -> str:
        return self._detect("header")

    # ------------------------------------------------------------------ v5
    def _check_v5_complete(self, key: str) -> None:
        """Walk the top-level data elements; a variable running past end-of-file means truncation."""
        if self._v5_checked:
            return
        data = self.path.read_bytes()
        endian = "<" if data[126:128] == b"IM" else ">"
        pos, size = 128, len(data)
        while pos < size:
            if pos + 8 > size:
                raise _err(self.path, key, f"file is truncated (partial element header at byte {pos})")
            mdtype, nbytes = struct.unpack(endian + "II", data[pos:pos + 8])
            if mdtype >> 16:  # small data element format: never at top level
                raise _err(self.path, key, f"corrupt file (bad element tag at byte {pos})")
            end = pos + 8 + nbytes
            if mdtype == 14:  # miMATRIX elements are padded to 8 bytes
                end += (-nbytes) % 8
            if pos + 8 + nbytes > size:
                raise _err(
                    self.path, key,
                    f"file is truncated (element at byte {pos} needs {nbytes} bytes, "
                    f"file ends after {size - pos - 8})",
                )
            pos = end
        self._v5_checked = True

    def _v5_keys(self, key: str) -> list[str]:
        import scipy.io

        self._check_v5_complete(key)
        try:
            return [name for name, _shape, _cls in scipy.io.whosmat(str(self.path))]
        except NotImplementedError:
            raise _err(self.path, key, "MATLAB v7.3 file whose HDF5 body is unreadable") from None
        except Exception as exc:  # scipy raises many types on corrupt input
            raise _err(self.path, key, f"cannot read (corrupt file: {_short(exc)})") from None

    def _v5_array(self, key: str) -> np.ndarray:
        import scipy.io
        import scipy.sparse

        try:
            mat = scipy.io.loadmat(str(self.path), variable_names=[key], squeeze_me=False)
        except Exception as exc:  # scipy raises many types on corrupt input
            raise _err(self.path, key, f"cannot read (corrupt file: {_short(exc)})") from None
        value = mat[key]
        if scipy.sparse.issparse(value):
            value = value.toarray()
        return value

    # ------------------------------------------------------------------ v7.3
    def _h5(self, key: str):
        import h5py

        try:
            return h5py.File(self.path, "r")
        except OSError as exc:
            raise _err(self.path, key, f"cannot open HDF5 (MATLAB v7.3) file: {_short(exc)}") from None

    def _v73_array(self, key: str) -> np.ndarray:
        import h5py

        with self._h5(key) as f:
            obj = f.get(key)
            try:
                if isinstance(obj, h5py.Group) and "MATLAB_sparse" in obj.attrs:
                    import scipy.sparse

                    nrows = int(obj.attrs["MATLAB_sparse"])
                    jc = np.asarray(obj["jc"])
                    ir = np.asarray(obj["ir"]) if "ir" in obj else np.zeros(0, np.int64)
                    vals = np.asarray(obj["data"]) if "data" in obj else np.zeros(0)
                    return scipy.sparse.csc_matrix((vals, ir, jc), shape=(nrows, len(jc) - 1)).toarray()
                if not isinstance(obj, h5py.Dataset):
                    raise _err(self.path, key, "is a MATLAB cell/struct, not a numeric array")
                value = obj[()]
            except FeatureSetError:
                raise
            except Exception as exc:  # h5py raises OSError/KeyError/... on corrupt chunks
                raise _err(self.path, key, f"cannot read (truncated or corrupt file: {_short(exc)})") from None
        value = np.asarray(value)
        if value.dtype.names is not None:  # complex numbers are stored as a (real, imag) compound
            raise _err(self.path, key, "complex data is not supported")
        return value.T  # MATLAB is column-major: h5py shows the transpose

    # ------------------------------------------------------------------ public
    def keys(self, key: str = "keys") -> list[str]:
        """Variable names in the file (``key`` only names what the caller wanted, for errors)."""
        if self._keys is None:
            if self._detect(key) == V73:
                with self._h5(key) as f:
                    self._keys = [k for k in f.keys() if not k.startswith("#")]
            else:
                self._keys = self._v5_keys(key)
        return list(self._keys)

    def has(self, key: str) -> bool:
        return key in self.keys(key)

    def array(self, key: str) -> np.ndarray:
        """Variable ``key`` as a numeric numpy array (MATLAB orientation)."""
        names = self.keys(key)
        if key not in names:
            shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            raise _err(self.path, key, f"missing key (file has: {shown or 'no variables'})")
        value = self._v73_array(key) if self._detect(key) == V73 else self._v5_array(key)
        value = np.asarray(value)
        if value.dtype.kind not in "biuf":
            raise _err(self.path, key, f"not a numeric array (MATLAB type gives dtype {value.dtype})")
        return value

    def features(self, key: str, *, dim: int | None = None, min_rows: int = 1) -> np.ndarray:
        """A 2-D ``(N, d)`` float32 feature matrix; checks shape, ``dim`` if given, at least
        ``min_rows`` rows (a split without items is corrupt, except where a layout allows it), NaN/Inf."""
        raw = self.array(key)
        if raw.ndim != 2:
            raise _err(self.path, key, f"wrong shape {raw.shape}: features must be a 2-D (N, d) matrix")
        if raw.shape[1] == 0:
            raise _err(self.path, key, f"wrong shape {raw.shape}: no feature columns")
        if raw.shape[0] < min_rows:
            raise _err(self.path, key, f"wrong shape {raw.shape}: no items (every split needs at least {min_rows})")
        if dim is not None and raw.shape[1] != dim:
            raise _err(self.path, key, f"wrong shape {raw.shape}: feature dim {raw.shape[1]}, other split has {dim}")
        with np.errstate(over="ignore", invalid="ignore"):
            x = raw.astype(np.float32)
        bad = ~np.isfinite(x)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            what = "contains NaN or Inf" if not np.isfinite(raw[row, col]) else "has values beyond float32 range"
            raise _err(
                self.path, key,
                f"{what} ({int(bad.sum())} values; first at row {row + 1}, column {col + 1})",
            )
        return x

    def labels(self, key: str, *, base: int, rows: int | None = None, rows_from: str = "") -> np.ndarray:
        """Single-label class ids as 0-based int64 ``(N,)``; the file's labels start at ``base`` (0 or 1).

        Accepts (N,), (N, 1) or (1, N). ``rows`` checks the count (``rows_from`` names the key
        the count came from, for the message).
        """
        y = self.array(key)
        if y.ndim > 2 or (y.ndim == 2 and 1 not in y.shape):
            raise _err(
                self.path, key,
                f"wrong shape {y.shape}: single labels must be (N, 1) or (N,)"
                + (" (multi-hot? use the multi-label option)" if y.ndim == 2 else ""),
            )
        y = y.reshape(-1)
        check_rows(self.path, key, len(y), rows, rows_from)
        return to_class_ids(self.path, key, y, base)

    def multi_hot(self, key: str, *, rows: int | None = None, rows_from: str = "") -> np.ndarray:
        """Multi-hot labels ``(N, C)`` of 0/1 as uint8; a ``(N, 1)`` class-id column is not accepted."""
        y = self.array(key)
        if y.ndim != 2:
            raise _err(self.path, key, f"wrong shape {y.shape}: multi-hot labels must be (N, C)")
        check_rows(self.path, key, len(y), rows, rows_from)
        if y.size and not np.isin(y, (0, 1)).all():
            bad = y[~np.isin(y, (0, 1))]
            raise _err(self.path, key, f"labels out of range: multi-hot labels must be 0/1, found {bad.flat[0].item()!r}")
        return y.astype(np.uint8)


def check_rows(path, key: str, n: int, rows: int | None, rows_from: str = "") -> None:
    """Raise unless ``n`` equals the expected row count ``rows`` (``None`` skips the check)."""
    if rows is not None and n != rows:
        src = f" of {rows_from}" if rows_from else ""
        raise _err(path, key, f"wrong shape: {n} labels for {rows} feature rows{src}")


def to_class_ids(path, key: str, y: np.ndarray, base: int) -> np.ndarray:
    """Integer-valued labels starting at ``base`` -> 0-based int64 class ids (errors name file and key)."""
    y = np.asarray(y)
    if y.size == 0:
        return y.astype(np.int64)
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            raise _err(path, key, "labels contain NaN or Inf")
        if (y != np.round(y)).any():
            raise _err(path, key, f"labels out of range: not integers (found {y[y != np.round(y)][0].item()!r})")
    if y.max() >= 2**31:  # no class count is this large, and int64 casts of huge floats are undefined
        raise _err(path, key, f"labels out of range: found {y.max().item():g}")
    lo = int(y.min())
    if lo < base:
        raise _err(
            path, key,
            f"labels out of range: found {lo}, labels here are {base}-based (smallest allowed {base})",
        )
    return y.astype(np.int64) - base
