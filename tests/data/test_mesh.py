"""Mesh shape descriptors: hand-checkable values on tiny meshes, the claimed invariances, clear errors for broken meshes."""

import numpy as np
import pytest

from cvs_tf.data import mesh as M

S = M.block_slices()
# A histogram bin may gain or lose a sample whose value sits on a bin edge after a transform.
FLIP = 3.0 / min(M.N_PAIRS, M.N_TRIPLES)


def box(sx=1.0, sy=1.0, sz=1.0):
    """An axis-aligned box [0, sx] x [0, sy] x [0, sz] as 8 vertices and 12 outward triangles."""
    v = np.array([[x, y, z] for x in (0, sx) for y in (0, sy) for z in (0, sz)], dtype=float)
    f = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                  [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    return v, f


def rotation(seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def about_y(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def test_blocks_add_up_to_the_documented_dimension():
    d = M.mesh_descriptors(box())
    assert d.shape == (M.DIM,) == (105,) and d.dtype == np.float32
    assert [name for name, _ in M.BLOCKS] == list(S)
    for name in ("d2", "a3", "height", "radial", "horizontal_radial"):
        assert d[S[name]].sum() == pytest.approx(1.0, abs=1e-5), name
    assert d[S["pca_spectrum"]].sum() == pytest.approx(1.0, abs=1e-5)


def test_unit_cube_by_hand():
    d = M.mesh_descriptors(box())
    # Surface points of a centred unit cube: E|p|^2 = 1/4 + 1/12 + 1/12 = 5/12, so each side is
    # 1 / sqrt(5/12) RMS radii long (the six faces have equal area, so the sample mean is ~ the centre).
    assert d[S["axis_extents"]] == pytest.approx([np.sqrt(12 / 5)] * 3, rel=0.01)
    assert d[S["pca_spectrum"]] == pytest.approx([1 / 3] * 3, abs=0.02)
    # Height: the bottom and top faces (1/6 of the area each) fall in the first and last bins, the
    # four sides (4/6) spread evenly over all 16.
    h = d[S["height"]]
    side = 4 / 6 / 16
    assert h[0] == pytest.approx(1 / 6 + side, abs=0.02) and h[-1] == pytest.approx(1 / 6 + side, abs=0.02)
    assert h[1:-1] == pytest.approx([side] * 14, abs=0.015)
    # No surface point is closer to the centre than a face centre: 0.5 / max radius (sqrt(3)/2).
    r = d[S["radial"]]
    assert r[: int(16 * 0.5 / (np.sqrt(3) / 2))].sum() == 0


def test_a_tall_box_is_tall_and_a_flat_square_is_flat():
    tall = M.mesh_descriptors(box(1, 4, 1))
    x, y, z = tall[S["axis_extents"]]
    assert y / x == pytest.approx(4, rel=0.02) and x == pytest.approx(z, rel=0.02)
    spectrum = tall[S["pca_spectrum"]]
    assert spectrum[0] > 0.8 and spectrum[1] == pytest.approx(spectrum[2], abs=0.02)
    square = (np.array([[0, 0, 0], [1, 0, 0], [1, 0, 1], [0, 0, 1]], float), np.array([[0, 1, 2], [0, 2, 3]]))
    flat = M.mesh_descriptors(square)
    assert flat[S["axis_extents"]][1] == 0 and flat[S["pca_spectrum"]][2] == pytest.approx(0, abs=1e-6)
    assert flat[S["height"]][0] == 1.0  # no height range: every point in the first bin


def test_invariant_to_translation_and_uniform_scale():
    v, f = box(1, 2, 3)
    a = M.mesh_descriptors((v, f))
    b = M.mesh_descriptors((v * 8.0 + np.array([10.0, -3.0, 5.0]), f))
    np.testing.assert_allclose(a, b, atol=FLIP)


def test_rotation_invariant_blocks_are_invariant_to_any_rotation():
    v, f = box(1, 2, 3)
    a = M.mesh_descriptors((v, f))
    for seed in range(3):
        b = M.mesh_descriptors((v @ rotation(seed).T, f))
        for name in ("d2", "a3", "pca_spectrum", "pca_extents", "radial"):
            np.testing.assert_allclose(a[S[name]], b[S[name]], atol=max(FLIP, 1e-5), err_msg=name)
    # and the x/y/z extents are not: they are meant to see the orientation
    assert not np.allclose(a[S["axis_extents"]], b[S["axis_extents"]], atol=0.05)


def test_height_blocks_are_invariant_to_rotation_about_the_up_axis_only():
    v, f = box(1, 2, 3)
    a = M.mesh_descriptors((v, f))
    b = M.mesh_descriptors((v @ about_y(0.7).T, f))
    for name in ("height", "horizontal_radial"):
        np.testing.assert_allclose(a[S[name]], b[S[name]], atol=FLIP, err_msg=name)
    tipped = M.mesh_descriptors((v @ rotation(1).T, f))
    assert np.abs(a[S["height"]] - tipped[S["height"]]).max() > 0.05


def test_fixed_seed_is_deterministic_and_the_seed_matters():
    v, f = box(1, 2, 3)
    np.testing.assert_array_equal(M.mesh_descriptors((v, f)), M.mesh_descriptors((v, f)))
    assert not np.array_equal(M.mesh_descriptors((v, f)), M.mesh_descriptors((v, f), seed=1))


def test_sampling_is_uniform_over_area():
    v, f = box(1, 1, 1)
    p = M.sample_surface(v, f, 6000, seed=0)
    on_top = np.isclose(p[:, 1], 1.0).mean()
    assert on_top == pytest.approx(1 / 6, abs=0.02)
    assert ((p >= -1e-12) & (p <= 1 + 1e-12)).all()


@pytest.mark.parametrize("mesh, message", [
    ((np.zeros((3, 3)), np.zeros((0, 3), int)), "no triangles"),
    ((np.zeros((3, 3)), np.array([[0, 1, 2]])), "no surface"),
    ((np.eye(3), np.array([[0, 1, 3]])), "out of range"),
    ((np.eye(3), np.array([[0.0, 1.0, 2.0]])), "integers"),
    ((np.array([[0, 0, 0], [1, 0, 0], [np.nan, 1, 0]]), np.array([[0, 1, 2]])), "non-finite"),
    (42, "expected a mesh file path"),
])
def test_broken_meshes_raise_one_clear_error(mesh, message):
    with pytest.raises(M.MeshError, match=message):
        M.mesh_descriptors(mesh)


def test_missing_file_is_a_mesh_error(tmp_path):
    with pytest.raises(M.MeshError, match="no such mesh file"):
        M.mesh_descriptors(tmp_path / "nope.obj")


def test_obj_file_gives_the_same_descriptor_as_its_arrays(tmp_path):
    pytest.importorskip("trimesh")
    v, f = box(1, 2, 3)
    obj = tmp_path / "box.obj"
    # a quad face, as OBJ files from modelling tools have them, is split into two triangles
    lines = [f"v {x} {y} {z}" for x, y, z in v] + [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in f[2:]]
    lines.append("f 1 2 4 3")
    obj.write_text("\n".join(lines) + "\n")
    lv, lf = M.load_mesh(obj)
    assert lf.shape == (12, 3)
    # triangle order changes the sample, so compare what does not depend on it
    a, b = M.mesh_descriptors(obj), M.mesh_descriptors((v, f))
    np.testing.assert_allclose(a[S["axis_extents"]], b[S["axis_extents"]], rtol=0.02)


def _write_box(path, v, f):
    if path.suffix == ".off":
        body = [f"OFF\n{len(v)} {len(f)} 0"] + [f"{x} {y} {z}" for x, y, z in v] + [f"3 {a} {b} {c}" for a, b, c in f]
    else:  # ASCII PLY
        body = ["ply", "format ascii 1.0", f"element vertex {len(v)}", "property float x", "property float y",
                "property float z", f"element face {len(f)}", "property list uchar int vertex_indices", "end_header"]
        body += [f"{x} {y} {z}" for x, y, z in v] + [f"3 {a} {b} {c}" for a, b, c in f]
    path.write_text("\n".join(body) + "\n")


@pytest.mark.parametrize("suffix", [".off", ".ply"])
def test_off_and_ply_files_read_to_the_same_mesh(tmp_path, suffix):
    pytest.importorskip("trimesh")
    v, f = box(1, 2, 3)
    path = tmp_path / f"box{suffix}"
    _write_box(path, v, f)
    lv, lf = M.load_mesh(path)
    np.testing.assert_allclose(lv, v)
    np.testing.assert_array_equal(lf, f)
    np.testing.assert_array_equal(M.mesh_descriptors(path), M.mesh_descriptors((v, f)))


@pytest.mark.parametrize("text", ["this is not a mesh\n", "v 0 0 0\nv 1 0 0\n", ""])
def test_unreadable_obj_is_a_mesh_error(tmp_path, text):
    pytest.importorskip("trimesh")
    bad = tmp_path / "bad.obj"
    bad.write_text(text)
    with pytest.raises(M.MeshError, match="bad.obj"):
        M.mesh_descriptors(bad)
