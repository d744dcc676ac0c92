"""Memory-mapped feature arrays in memory: page release, one aligned float32 copy, or a tensor over the file's pages.

Every helper keeps a split's rows out of this process's resident set as far as it can: the
mapped pages behind rows already used are dropped (:func:`release_pages`, :func:`release_feature_set`;
cvs_tf.data.pipeline.row_batches), a copy is made once, chunk by chunk, and handed to TensorFlow
without a second copy (:func:`host_tensor`), or no copy is made at all (:func:`mapped_tensor`).
"""

from __future__ import annotations

import mmap

import numpy as np
import tensorflow as tf

from cvs_tf.data.store import FeatureSet

__all__ = ["CHUNK_BYTES", "drop_pages", "host_tensor", "mapped_tensor", "release_feature_set", "release_pages"]


CHUNK_BYTES = 1 << 24   # 16 MiB of float32 rows per copy step
_ALIGN = 64             # TF's CPU kernels need EIGEN_MAX_ALIGN_BYTES-aligned buffers


def _aligned_empty(shape: tuple, dtype=np.float32) -> np.ndarray:
    """An uninitialised C-contiguous array whose data pointer is 64-byte aligned."""
    nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    raw = np.empty(nbytes + _ALIGN, dtype=np.uint8)
    off = (-raw.ctypes.data) % _ALIGN
    return raw[off:off + nbytes].view(dtype).reshape(shape)


def _mapping(x: np.ndarray):
    """The ``mmap`` object behind a memory-mapped array (or one of its views), else None."""
    obj = x
    while obj is not None:
        mm = getattr(obj, "_mmap", None)
        if isinstance(mm, mmap.mmap):
            return mm
        obj = getattr(obj, "base", None)
    return None


def mapped_tensor(x):
    """``(tensor, view)``: a float32 tensor over the file pages of ``x`` (no copy), when ``x`` is a whole
    memory-mapped 2-D float32 ``.npy``; else None. ``view`` is a copy-on-write mapping of the same file
    (DLPack needs a writable array; nothing ever writes to it), 64-byte aligned as TensorFlow needs."""
    name = getattr(x, "filename", None)
    if not isinstance(x, np.memmap) or not name or x.dtype != np.float32 or x.ndim != 2 or not x.flags.c_contiguous:
        return None
    try:
        view = np.load(name, mmap_mode="c", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if view.shape != x.shape or view.dtype != x.dtype or view.ctypes.data % _ALIGN or not view.flags.c_contiguous:
        return None
    try:
        return tf.experimental.dlpack.from_dlpack(view.__dlpack__()), view
    except (AttributeError, TypeError, ValueError, BufferError, tf.errors.OpError):
        return None


def drop_pages(x: np.ndarray) -> None:
    """Drop every resident page of the file mapping behind ``x`` (nothing for an in-memory array)."""
    mm = _mapping(x)
    if mm is not None and hasattr(mm, "madvise"):
        try:
            mm.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):
            pass


def release_pages(x: np.ndarray, start: int, stop: int) -> None:
    """Drop rows ``start:stop`` of a read-only memory-mapped array from this process's resident set.

    The pages stay in the OS page cache and fault back in on the next access; nothing happens
    for an in-memory array, a writable mapping or a platform without ``madvise``.
    """
    mm = _mapping(x)
    if mm is None or not hasattr(mm, "madvise") or x.flags.writeable or not x.flags.c_contiguous or stop <= start:
        return
    base = np.frombuffer(mm, dtype=np.uint8).ctypes.data
    lo = x[start:stop].ctypes.data - base
    hi = lo + (stop - start) * x.strides[0]
    lo -= lo % mmap.PAGESIZE
    try:
        mm.madvise(mmap.MADV_DONTNEED, lo, min(hi, len(mm)) - lo)
    except (OSError, ValueError):
        pass


def release_feature_set(fs: FeatureSet) -> None:
    """Drop every memory-mapped array of ``fs`` from the resident set (e.g. after the load-time
    check read all of them); the data stay on disk and in the page cache, and fault back in when used."""
    for x, y in fs.arrays.values():
        for arr in (x, y):
            if isinstance(arr, np.ndarray) and arr.ndim >= 1 and len(arr):
                release_pages(arr, 0, len(arr))


def host_tensor(x: np.ndarray, chunk_bytes: int = CHUNK_BYTES) -> tf.Tensor:
    """A float32 tensor holding ``x`` (any float array, typically memory-mapped) with a single copy.

    Rows are converted into an aligned float32 buffer chunk by chunk (releasing the mapped pages
    behind them, :func:`release_pages`); the buffer becomes the tensor through DLPack, without a
    second copy. The tensor stays in host memory, where the input pipeline gathers from it.
    """
    x = np.asarray(x) if not isinstance(x, np.ndarray) else x
    if x.ndim == 1:
        x = x.reshape(-1, 1)
    out = _aligned_empty(x.shape, np.float32)
    rows = max(1, chunk_bytes // max(1, x.shape[1] * 4))
    for a in range(0, x.shape[0], rows):
        b = min(a + rows, x.shape[0])
        out[a:b] = x[a:b]
        release_pages(x, a, b)
    try:
        t = tf.experimental.dlpack.from_dlpack(out.__dlpack__())
    except (AttributeError, TypeError, ValueError, tf.errors.OpError):  # no zero-copy path: one TF copy
        t = tf.constant(out)
    return t
