"""MATLAB reading: v5 and v7.3 give the same arrays (v7.3 transposed back), and bad files fail naming file and key."""

import h5py
import numpy as np
import pytest
import scipy.io
import scipy.sparse

from cvs_tf.data.converters.matfile import V5, V73, MatFile, to_class_ids
from cvs_tf.data.store import FeatureSetError
from tests.data.converters.layouts import VERSIONS, write_mat, write_v73_sparse

X = np.arange(12, dtype=np.float64).reshape(4, 3)  # 4 items, 3 features: X[i, j] = 3 i + j


@pytest.mark.parametrize("version", VERSIONS)
def test_both_versions_read_back_in_matlab_orientation(tmp_path, version):
    path = write_mat(tmp_path / "a.mat", {"feat": X, "lab": np.array([[1.0], [2.0], [2.0], [1.0]])}, version)
    mat = MatFile(path)
    assert mat.version == (V5 if version == "v5" else V73)
    assert sorted(mat.keys()) == ["feat", "lab"]
    np.testing.assert_array_equal(mat.array("feat"), X)
    feats = mat.features("feat")
    assert feats.dtype == np.float32 and feats.shape == (4, 3)
    assert feats[2, 1] == 7.0  # row 2, column 1 = 3*2 + 1: not transposed
    np.testing.assert_array_equal(mat.labels("lab", base=1, rows=4), [0, 1, 1, 0])


def test_v73_file_is_hdf5_with_matlab_header_and_scipy_refuses_it(tmp_path):
    path = write_mat(tmp_path / "a.mat", {"feat": X}, "v7.3")
    assert h5py.is_hdf5(path)
    assert path.read_bytes()[:10] == b"MATLAB 7.3"
    with h5py.File(path) as f:
        assert f["feat"].shape == (3, 4)  # column-major on disk
    with pytest.raises(NotImplementedError):
        scipy.io.loadmat(path)


@pytest.mark.parametrize("version", VERSIONS)
def test_sparse_matrices_are_densified(tmp_path, version):
    dense = np.array([[0.0, 2.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
    if version == "v5":
        path = write_mat(tmp_path / "s.mat", {"bow": scipy.sparse.csc_matrix(dense)}, "v5")
    else:
        path = write_v73_sparse(write_mat(tmp_path / "s.mat", {"other": X}, "v7.3"), "bow", dense)
    np.testing.assert_array_equal(MatFile(path).features("bow"), dense.astype(np.float32))


@pytest.mark.parametrize("version", VERSIONS)
def test_missing_key_names_file_key_and_what_is_there(tmp_path, version):
    path = write_mat(tmp_path / "a.mat", {"feat": X}, version)
    with pytest.raises(FeatureSetError, match=r"a\.mat: I_tr: missing key \(file has: feat\)"):
        MatFile(path).features("I_tr")


@pytest.mark.parametrize("version", VERSIONS)
def test_truncated_file_names_file_and_key(tmp_path, version):
    path = write_mat(tmp_path / "a.mat", {"feat": np.ones((50, 40)), "more": np.ones((30, 3))}, version)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FeatureSetError, match=r"a\.mat: feat: .*(truncated|corrupt)"):
        MatFile(path).features("feat")


def test_garbage_and_missing_files(tmp_path):
    (tmp_path / "g.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(FeatureSetError, match=r"g\.mat: k: not a MATLAB"):
        MatFile(tmp_path / "g.mat").array("k")
    with pytest.raises(FeatureSetError, match=r"nope\.mat: k: file not found"):
        MatFile(tmp_path / "nope.mat").array("k")


@pytest.mark.parametrize("version", VERSIONS)
def test_nan_and_wrong_shapes(tmp_path, version):
    bad = X.copy()
    bad[2, 1] = np.nan
    path = write_mat(tmp_path / "a.mat", {"bad": bad, "cube": np.ones((2, 3, 4)), "feat": X}, version)
    mat = MatFile(path)
    with pytest.raises(FeatureSetError, match=r"bad: contains NaN or Inf \(1 values; first at row 3, column 2\)"):
        mat.features("bad")
    with pytest.raises(FeatureSetError, match=r"cube: wrong shape \(2, 3, 4\)"):
        mat.features("cube")
    with pytest.raises(FeatureSetError, match=r"feat: wrong shape \(4, 3\): feature dim 3, other split has 5"):
        mat.features("feat", dim=5)
    with pytest.raises(FeatureSetError, match=r"feat: wrong shape \(4, 3\): single labels"):
        mat.labels("feat", base=0)


def test_values_beyond_float32_are_rejected(tmp_path):
    path = write_mat(tmp_path / "a.mat", {"big": np.array([[1.0, 1e300]])}, "v5")
    with pytest.raises(FeatureSetError, match="big: has values beyond float32 range"):
        MatFile(path).features("big")


def test_label_checks():
    np.testing.assert_array_equal(to_class_ids("f", "k", np.array([1.0, 3.0, 2.0]), 1), [0, 2, 1])
    np.testing.assert_array_equal(to_class_ids("f", "k", np.array([0, 4]), 0), [0, 4])
    with pytest.raises(FeatureSetError, match=r"f: k: labels out of range: found 0, labels here are 1-based"):
        to_class_ids("f", "k", np.array([0.0, 1.0]), 1)
    with pytest.raises(FeatureSetError, match=r"f: k: labels out of range: found -1"):
        to_class_ids("f", "k", np.array([-1, 1]), 0)
    with pytest.raises(FeatureSetError, match="not integers"):
        to_class_ids("f", "k", np.array([1.5]), 1)
    with pytest.raises(FeatureSetError, match="NaN"):
        to_class_ids("f", "k", np.array([np.nan]), 1)


def test_label_count_and_multi_hot_checks(tmp_path):
    path = write_mat(tmp_path / "a.mat", {"lab": np.array([[1.0], [2.0]]), "mh": np.array([[1, 0], [2, 1]])}, "v5")
    mat = MatFile(path)
    with pytest.raises(FeatureSetError, match=r"lab: wrong shape: 2 labels for 3 feature rows of I_tr"):
        mat.labels("lab", base=1, rows=3, rows_from="I_tr")
    with pytest.raises(FeatureSetError, match=r"mh: labels out of range: multi-hot labels must be 0/1, found 2"):
        mat.multi_hot("mh")


def test_compressed_v7_files_read_and_truncation_is_caught(tmp_path):
    # MATLAB's default -v7 format is the v5 container with zlib-compressed elements
    path = tmp_path / "c.mat"
    scipy.io.savemat(path, {"feat": X, "lab": np.array([[1.0], [2.0], [2.0], [1.0]])}, do_compression=True)
    np.testing.assert_array_equal(MatFile(path).features("feat"), X.astype(np.float32))
    data = path.read_bytes()
    path.write_bytes(data[:-20])
    with pytest.raises(FeatureSetError, match=r"c\.mat: lab: file is truncated"):
        MatFile(path).labels("lab", base=1)
