"""feature_dataset: rows gathered in tf.data, the same global batches as the index pipeline, and their per-replica blocks."""

import numpy as np
import pytest

from cvs_tf.data.pipeline import (
    FeatureBank,
    ReplicaShard,
    batch_spec,
    feature_dataset,
    global_batch_rows,
    index_dataset,
    per_replica_rows,
)
from cvs_tf.data.store import load_feature_set
from tests.data.proc_memory import status_kib
from tests.helpers import make_toy_featureset


def _take(ds, n):
    return [b for _, b in zip(range(n), ds)]


@pytest.fixture(scope="module")
def banks(tmp_path_factory):
    root = tmp_path_factory.mktemp("shard")
    aligned = load_feature_set(make_toy_featureset(root / "a", modalities={"image": 6, "text": 4}))
    paired = load_feature_set(make_toy_featureset(root / "p", modalities={"image": 6, "text": 4}, paired=True))
    return aligned, FeatureBank(aligned, ["image", "text"]), FeatureBank(paired, ["image", "text"])


def test_feature_batches_are_the_index_batches_gathered(banks):
    fs, bank, _ = banks
    idx = _take(index_dataset(bank, 8, seed=4, start_step=3), 3)
    got = _take(feature_dataset(bank, 8, seed=4, start_step=3), 3)
    for i, (x, y) in zip(idx, got):
        for m in ("image", "text"):
            np.testing.assert_array_equal(x[m].numpy(), np.asarray(fs.x(m, "train"))[i[m].numpy()])
            np.testing.assert_array_equal(y[m].numpy(), np.asarray(fs.y(m, "train"))[i[m].numpy()])
    x, y = got[0]
    spec = batch_spec(fs, ["image", "text"], 8)
    assert all(x[m].shape == spec[0][m].shape and y[m].dtype == spec[1][m].dtype for m in x)


@pytest.mark.parametrize("which", [1, 2])
def test_replica_blocks_are_consecutive_rows_of_the_same_global_batch(banks, which):
    bank = banks[which]
    whole = _take(feature_dataset(bank, 8, seed=2), 3)
    both = _take(feature_dataset(bank, 8, seed=2, shard=ReplicaShard(2, 0, 2)), 6)   # one pipeline, 2 replicas
    second = _take(feature_dataset(bank, 8, seed=2, shard=ReplicaShard(2, 1, 1)), 3)  # worker 1 of 2
    for step, (x, _) in enumerate(whole):
        for m in x:
            np.testing.assert_array_equal(both[2 * step][0][m].numpy(), x[m].numpy()[:4])
            np.testing.assert_array_equal(both[2 * step + 1][0][m].numpy(), x[m].numpy()[4:])
            np.testing.assert_array_equal(second[step][0][m].numpy(), x[m].numpy()[4:])


def test_a_paired_set_smaller_than_the_batch_keeps_a_multiple_of_the_replicas(banks):
    bank = banks[2]
    n = bank.size
    assert global_batch_rows(bank, n + 5) == n and global_batch_rows(bank, n + 5, replicas=4) == n - n % 4
    (x, _), = _take(feature_dataset(bank, n + 5, seed=0), 1)
    blocks = _take(feature_dataset(bank, n + 5, seed=0, shard=ReplicaShard(4, 0, 4)), 4)
    rows = n - n % 4
    got = np.concatenate([b[0]["image"].numpy() for b in blocks])
    np.testing.assert_array_equal(got, x["image"].numpy()[:rows])
    with pytest.raises(ValueError, match="does not split evenly over 3 replicas"):
        per_replica_rows(8, 3)
    with pytest.raises(ValueError, match="outside"):
        ReplicaShard(2, 1, 2)


def test_making_an_iterator_does_not_copy_the_bank(banks):
    """tf.data's default graph rewrites would serialize the captured bank when the iterator is made."""
    import tensorflow as tf

    bank = FeatureBank(banks[0], ["image", "text"])
    bank.features["image"] = tf.zeros((100_000, 512))   # a 195 MiB bank (the gather reads its first rows only)
    try:
        with open("/proc/self/clear_refs", "w") as f:     # VmHWM := VmRSS
            f.write("5")
    except OSError:
        pytest.skip("cannot reset the peak resident memory here")
    before = status_kib("VmRSS")
    next(iter(feature_dataset(bank, 8, seed=0)))
    assert status_kib("VmHWM") - before < 50 * 1024
