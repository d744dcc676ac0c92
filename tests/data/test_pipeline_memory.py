"""FeatureBank memory: one float32 copy per bank (chunked, zero-copy hand-over to TF), mapped pages released."""

import numpy as np
import pytest
import tensorflow as tf

from cvs_tf.data.pipeline import FeatureBank, host_tensor, release_feature_set, release_pages
from cvs_tf.data.store import load_feature_set
from tests.data.proc_memory import status_kib
from tests.helpers import make_toy_featureset

MIB = 2**20


def rss() -> int:
    return status_kib("VmRSS") * 1024


@pytest.fixture
def big_npy(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(0).standard_normal((16384, 2048), dtype=np.float32))   # 128 MiB
    return path


def test_host_tensor_values_and_dtypes():
    x = np.random.default_rng(1).standard_normal((1000, 7)).astype(np.float16)
    t = host_tensor(x, chunk_bytes=4 * 7 * 64)            # 64 rows per chunk: many chunks, one tail
    assert t.dtype == tf.float32 and t.shape == (1000, 7)
    np.testing.assert_array_equal(t.numpy(), x.astype(np.float32))
    np.testing.assert_array_equal(tf.gather(t, [999, 0]).numpy(), x[[999, 0]].astype(np.float32))


def test_host_tensor_holds_one_copy_and_drops_the_mapping(big_npy):
    x = np.load(big_npy, mmap_mode="r")
    size = x.nbytes
    before = rss()
    t = host_tensor(x)
    grown = rss() - before
    # the old path (tf.constant of the mapped array) ended 2x above (tensor + mapped pages), peaking near 3x
    assert 0.9 * size < grown < 1.25 * size, grown / MIB
    assert float(tf.reduce_sum(t[:3])) == pytest.approx(float(x[:3].sum(dtype=np.float64)), rel=1e-5)


def test_release_pages_returns_resident_mapped_pages(big_npy):
    x = np.load(big_npy, mmap_mode="r")
    before = rss()
    total = float(x.sum(dtype=np.float64))                  # maps every page in
    assert rss() - before > 0.9 * x.nbytes
    release_pages(x, 0, len(x))
    assert rss() - before < 0.1 * x.nbytes
    assert float(x.sum(dtype=np.float64)) == total          # the data fault back in unchanged
    release_pages(np.ones((4, 4), np.float32), 0, 4)        # in-memory arrays: nothing to do


def test_bank_and_release_feature_set(tmp_path):
    fs = load_feature_set(make_toy_featureset(tmp_path / "toy"))
    release_feature_set(fs)
    bank = FeatureBank(fs, ["image", "text"], "train")
    for m in ("image", "text"):
        np.testing.assert_array_equal(bank.features[m].numpy(), np.asarray(fs.x(m, "train"), np.float32))
