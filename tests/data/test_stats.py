"""Tests for cvs_tf.data.stats.feature_moments: chunked float64 mean/std equal numpy's on a float16 memmap."""

import numpy as np
import pytest

from cvs_tf.data.stats import feature_moments


def test_moments_match_numpy_across_chunks(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(1001, 7)) * [1, 2, 3, 4, 5, 6, 0] + 10).astype(np.float16)
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    mean, std = feature_moments(mapped, chunk_rows=100)
    ref = x.astype(np.float64)
    np.testing.assert_allclose(mean, ref.mean(0), rtol=1e-6)
    np.testing.assert_allclose(std, ref.std(0), rtol=1e-5, atol=1e-6)
    assert mean.dtype == std.dtype == np.float32 and std[-1] == 0.0
    with pytest.raises(ValueError, match="at least one row"):
        feature_moments(np.zeros((0, 3)))
