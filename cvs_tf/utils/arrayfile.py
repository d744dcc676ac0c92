"""Numeric arrays given on a command line (search queries, index galleries and labels): .npy, or .npz holding one array, checked."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from cvs_tf.utils.cli import CliError

#: the key used in a .npz that holds several arrays (as in the import layout, docs/serving.md)
NPZ_KEY = "features"


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:160]


def load_array(path, what: str, *, npz_key: str = NPZ_KEY) -> np.ndarray:
    """The array of a ``.npy`` file, or of a ``.npz`` holding one array (several: the ``npz_key`` one).

    A missing, unreadable, pickled or non-numeric file is one :class:`CliError` naming ``path``.
    """
    p = Path(path)
    if not p.exists():
        raise CliError(f"{path}: no such {what} file")
    if p.is_dir():
        raise CliError(f"{path}: is a directory, not a {what} file (.npy or .npz)")
    try:
        loaded = np.load(p, mmap_mode="r", allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                keys = list(loaded.files)
                if not keys:
                    raise CliError(f"{path}: .npz holds no array")
                if len(keys) > 1 and npz_key not in keys:
                    raise CliError(f"{path}: .npz holds {len(keys)} arrays ({', '.join(keys[:8])}); "
                                   f"keep one, or name the {what} array {npz_key!r}")
                a = loaded[keys[0] if len(keys) == 1 else npz_key]
        else:
            a = loaded
    except CliError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):
            raise CliError(f"{path}: not a .npy or .npz file of numbers (text, or pickled Python objects?)") from None
        raise CliError(f"{path}: unreadable {what} file ({_reason(exc)})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise CliError(f"{path}: unreadable {what} file ({_reason(exc)})") from None
    if a.dtype.kind not in "biuf":
        raise CliError(f"{path}: {what} must be numbers, got dtype {a.dtype}")
    return a


def load_matrix(path, what: str, *, one_row: bool = False) -> np.ndarray:
    """A (N, d) numeric array from :func:`load_array`, N >= 1 and d >= 1 (``one_row``: a (d,) vector is one row)."""
    a = load_array(path, what)
    if a.dtype.kind == "b":
        raise CliError(f"{path}: {what} must be numbers, got dtype {a.dtype}")
    if one_row and a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        shapes = "(d,) or (N, d)" if one_row else "(N, d)"
        raise CliError(f"{path}: {what} must be {shapes}, got shape {a.shape}")
    if a.shape[0] == 0:
        raise CliError(f"{path}: {what} have no rows (shape {a.shape})")
    if a.shape[1] == 0:
        raise CliError(f"{path}: {what} have no columns (shape {a.shape})")
    return a
