"""Mesh encoder: the shape descriptors of :mod:`cvs_tf.data.mesh` (OBJ, OFF, PLY, STL; no model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cvs_tf.data.encoders import Encoder, ItemError
from cvs_tf.data.mesh import DIM, MESH_DESCRIPTOR_INFO, MeshError, mesh_descriptors


class MeshEncoder(Encoder):
    """:func:`~cvs_tf.data.mesh.mesh_descriptors` of each file (105-d)."""

    kind = "mesh"
    dim = DIM
    preprocessing = MESH_DESCRIPTOR_INFO["recipe"]

    def read(self, value: str, base: Path) -> np.ndarray:
        path = base / value
        try:
            return mesh_descriptors(path)
        except MeshError as exc:  # its message starts with the path; the caller names the file
            raise ItemError(str(exc).removeprefix(f"{path}: ")) from None

    def encode(self, items: list) -> np.ndarray:
        return np.stack(items).astype(np.float32)

    def versions(self) -> dict:
        import importlib.metadata

        try:
            trimesh = importlib.metadata.version("trimesh")
        except importlib.metadata.PackageNotFoundError:
            trimesh = "not installed"
        return {"trimesh": trimesh, "weights_sha256": None}
