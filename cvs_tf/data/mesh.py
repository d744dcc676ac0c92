"""Shape descriptors of 3D meshes (OBJ, OFF, PLY, STL): surface point sampling, no model weights.

:func:`mesh_descriptors` turns one mesh into a fixed-length vector (:data:`DIM` = 105 values).
Points are sampled uniformly on the surface (triangles drawn by area, uniform barycentric
coordinates) with a fixed seed, so a mesh always gives the same vector. The points are centred
on their mean and every length is divided by their RMS distance to it, so the whole vector is
invariant to translation and to uniform scale. Blocks, in order:

====================  ====  =====================================================================
block                 dims  what it is (invariance beyond translation and scale)
====================  ====  =====================================================================
``d2``                 32   D2 shape distribution (Osada et al. 2002): histogram of the distance
                            between random point pairs, over [0, 4) RMS radii; any rotation
``a3``                 16   A3: histogram of the angle at the middle point of random triples,
                            over [0, pi]; any rotation
``pca_spectrum``        3   eigenvalues of the points' covariance, descending, summing to 1;
                            any rotation
``pca_extents``         3   extent (max - min) of the points along each principal axis, in RMS
                            radii, descending; any rotation
``axis_extents``        3   extent along x, y (up), z, in RMS radii; orientation-dependent
``height``             16   histogram of the height (the ``up_axis`` coordinate) over the
                            points' own height range; any rotation about the up axis
``radial``             16   histogram of the distance to the centre over [0, max distance];
                            any rotation
``horizontal_radial``  16   histogram of the distance to the vertical axis through the centre
                            over [0, its max]; any rotation about the up axis
====================  ====  =====================================================================

Histograms are frequencies (each block sums to 1). The up axis is ``y`` by default, the
convention of OBJ files from modelling tools and of Sweet Home 3D.

Files are read with ``trimesh`` (``trimesh.load(..., force="mesh")``: multi-part files are
concatenated, materials are not read). A file that cannot be read, or holds no triangle with
a non-zero area, raises :class:`MeshError` with a one-line message naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

N_POINTS = 4096
N_PAIRS = 16384
N_TRIPLES = 8192
SEED = 0
UP_AXIS = 1

BLOCKS: tuple[tuple[str, int], ...] = (
    ("d2", 32), ("a3", 16), ("pca_spectrum", 3), ("pca_extents", 3), ("axis_extents", 3),
    ("height", 16), ("radial", 16), ("horizontal_radial", 16),
)
DIM = sum(d for _, d in BLOCKS)
D2_RANGE = 4.0  # D2 distances are binned over [0, D2_RANGE) RMS radii; longer ones go to the last bin
MESH_SUFFIXES = (".obj", ".off", ".ply", ".stl")


class MeshError(ValueError):
    """A mesh that cannot be read or has no surface to sample."""


def block_slices() -> dict[str, slice]:
    """Where each named block lies in a descriptor vector."""
    out, start = {}, 0
    for name, d in BLOCKS:
        out[name] = slice(start, start + d)
        start += d
    return out


def load_mesh(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) float64 and triangles (F, 3) int64 of a mesh file, read with trimesh."""
    path = Path(path)
    if not path.is_file():
        raise MeshError(f"{path}: no such mesh file")
    try:
        import trimesh
    except ImportError:
        raise MeshError("reading mesh files needs the trimesh package; run: pip install -r requirements.txt") from None
    kwargs = {"skip_materials": True} if path.suffix.lower() == ".obj" else {}
    try:
        mesh = trimesh.load(str(path), force="mesh", process=False, **kwargs)
    except Exception as exc:  # trimesh raises many types for a malformed file
        raise MeshError(f"{path}: cannot read mesh ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from None
    faces = getattr(mesh, "faces", None)
    if faces is None or len(faces) == 0:
        raise MeshError(f"{path}: no triangles in the mesh")
    return np.asarray(mesh.vertices, dtype=np.float64), np.asarray(faces, dtype=np.int64)


def _as_arrays(mesh, where: str) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(mesh, (str, os.PathLike)):
        return load_mesh(mesh)
    if isinstance(mesh, tuple) and len(mesh) == 2:
        vertices, faces = mesh
    elif hasattr(mesh, "vertices") and hasattr(mesh, "faces"):
        vertices, faces = mesh.vertices, mesh.faces
    else:
        raise MeshError(f"{where}: expected a mesh file path, a (vertices, faces) pair or a trimesh.Trimesh, "
                        f"got {type(mesh).__name__}")
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3 or not np.issubdtype(f.dtype, np.integer):
        raise MeshError(f"{where}: vertices must be (V, 3) and faces (F, 3) integers, got {v.shape} and {f.shape}")
    if len(f) == 0:
        raise MeshError(f"{where}: no triangles in the mesh")
    if f.min() < 0 or f.max() >= len(v):
        raise MeshError(f"{where}: face indices out of range for {len(v)} vertices")
    if not np.isfinite(v).all():
        raise MeshError(f"{where}: non-finite vertex coordinates")
    return v, f.astype(np.int64)


def sample_surface(vertices: np.ndarray, faces: np.ndarray, n: int = N_POINTS, seed: int = SEED,
                   where: str = "mesh") -> np.ndarray:
    """``n`` points uniform on the surface: triangles drawn by area, uniform barycentric coordinates."""
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    total = area.sum()
    if not np.isfinite(total) or total <= 0:
        raise MeshError(f"{where}: the mesh has no surface (every triangle has zero area)")
    rng = np.random.default_rng(seed)
    tri = rng.choice(len(faces), size=n, p=area / total)
    u, v = rng.random((2, n, 1))
    flip = (u + v) > 1.0
    u, v = np.where(flip, 1.0 - u, u), np.where(flip, 1.0 - v, v)
    return a[tri] + u * (b[tri] - a[tri]) + v * (c[tri] - a[tri])


def _hist(values: np.ndarray, bins: int, hi: float) -> np.ndarray:
    """Frequencies of ``values`` in ``bins`` equal bins over [0, hi]; values at or past ``hi`` go to the last bin."""
    idx = np.clip((values / hi * bins).astype(np.int64), 0, bins - 1) if hi > 0 else np.zeros(len(values), np.int64)
    return np.bincount(idx, minlength=bins).astype(np.float64) / len(values)


def mesh_descriptors(mesh, *, n_points: int = N_POINTS, seed: int = SEED, up_axis: int = UP_AXIS) -> np.ndarray:
    """The :data:`DIM`-d shape descriptor of ``mesh`` (float32; blocks in the module docstring).

    ``mesh``: a file path (read with :func:`load_mesh`), a ``(vertices, faces)`` pair of arrays,
    or any object with ``vertices`` and ``faces`` (a ``trimesh.Trimesh``). Raises
    :class:`MeshError` for a mesh that cannot be read or has no surface.
    """
    where = str(mesh) if isinstance(mesh, (str, os.PathLike)) else "mesh"
    if up_axis not in (0, 1, 2):
        raise MeshError(f"up_axis must be 0, 1 or 2, got {up_axis}")
    v, f = _as_arrays(mesh, where)
    p = sample_surface(v, f, n_points, seed, where)
    p = p - p.mean(axis=0)
    rms = float(np.sqrt((p ** 2).sum(axis=1).mean()))
    if not rms > 0:
        raise MeshError(f"{where}: the mesh has no extent (all points coincide)")
    p = p / rms
    rng = np.random.default_rng(seed + 1)

    i, j = rng.integers(0, n_points, size=(2, N_PAIRS))
    d2 = _hist(np.linalg.norm(p[i] - p[j], axis=1), 32, D2_RANGE)

    i, j, k = rng.integers(0, n_points, size=(3, N_TRIPLES))
    e1, e2 = p[i] - p[j], p[k] - p[j]
    norms = np.linalg.norm(e1, axis=1) * np.linalg.norm(e2, axis=1)
    ok = norms > 1e-12
    cos = np.clip((e1[ok] * e2[ok]).sum(axis=1) / norms[ok], -1.0, 1.0)
    a3 = _hist(np.arccos(cos), 16, np.pi) if ok.any() else np.zeros(16)

    evals, evecs = np.linalg.eigh(p.T @ p / n_points)
    order = np.argsort(evals)[::-1]
    spectrum = np.clip(evals[order], 0.0, None)
    spectrum = spectrum / spectrum.sum()
    proj = p @ evecs[:, order]
    pca_extents = np.sort(proj.max(axis=0) - proj.min(axis=0))[::-1]
    axis_extents = p.max(axis=0) - p.min(axis=0)

    h = p[:, up_axis] - p[:, up_axis].min()
    height = _hist(h, 16, float(h.max()))
    r = np.linalg.norm(p, axis=1)
    radial = _hist(r, 16, float(r.max()))
    horiz = np.linalg.norm(np.delete(p, up_axis, axis=1), axis=1)
    horizontal_radial = _hist(horiz, 16, float(horiz.max()))

    out = np.concatenate([d2, a3, spectrum, pca_extents, axis_extents, height, radial, horizontal_radial])
    return out.astype(np.float32)


MESH_DESCRIPTOR_INFO = {
    "name": "mesh shape descriptors (cvs_tf.data.mesh, numpy + trimesh, no model)",
    "dim": DIM,
    "blocks": dict(BLOCKS),
    "recipe": f"{N_POINTS} surface points (area-weighted, seed {SEED}), centred, scaled to unit RMS radius; "
              f"D2 of {N_PAIRS} pairs, A3 of {N_TRIPLES} triples, PCA spectrum and extents, x/y/z extents, "
              "height, radial and horizontal-radial histograms; up axis y",
}
