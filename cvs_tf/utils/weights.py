"""sha256 of model weights: the identity of an encoder's or an export's weights, whatever the file format."""

from __future__ import annotations

import hashlib

import numpy as np


def sha256_of(named_arrays) -> str:
    """sha256 over ``(path, array)`` pairs: each path, dtype and shape, then the array's bytes."""
    h = hashlib.sha256()
    for path, value in named_arrays:
        a = np.ascontiguousarray(value)
        h.update(f"{path}:{a.dtype}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def weights_sha256(layer) -> str:
    """sha256 over the bytes of a layer's weights (in ``layer.weights`` order)."""
    return sha256_of((v.path, np.asarray(v)) for v in layer.weights)


def loaded_weights_sha256(loaded) -> str:
    """:func:`weights_sha256` of a loaded SavedModel's variables (their names are the layer's weight paths + ``:0``)."""
    return sha256_of((v.name.rsplit(":", 1)[0], v.numpy()) for v in loaded.variables)


__all__ = ["loaded_weights_sha256", "sha256_of", "weights_sha256"]
