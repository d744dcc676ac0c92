"""Instance-paired sampling past one permutation (--steps-per-epoch above one pass): the index stream and an exact resume."""

import json

import numpy as np
import pytest
import tensorflow as tf

from cvs_tf.data.pipeline import FeatureBank, index_dataset, steps_per_epoch
from cvs_tf.data.store import load_feature_set
from tests.helpers import make_toy_featureset, write_small_config


def _take(ds, n):
    return [{m: v.numpy() for m, v in b.items()} for b in ds.take(n)]


@pytest.fixture
def paired_bank(tmp_path):
    fs = load_feature_set(make_toy_featureset(tmp_path / "p", paired=True, n_train=40))
    return FeatureBank(fs, ["image", "text"])


def _perm(n, seed, k):
    return tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int32), seed=[seed, k]).numpy()


def test_wrapped_stream_is_full_batches_and_covers_every_item_once_per_pass(paired_bank):
    n, b = paired_bank.size, 8
    assert n % b != 0  # batches straddle two permutations
    steps = 3 * n // b + 2  # three passes and a bit in one "epoch"
    batches = _take(index_dataset(paired_bank, b, seed=5, steps=steps), steps)
    for x in batches:
        assert x["image"].shape == (b,)
        np.testing.assert_array_equal(x["image"], x["text"])
    stream = np.concatenate([x["image"] for x in batches])
    for p in range(len(stream) // n):
        np.testing.assert_array_equal(np.sort(stream[p * n:(p + 1) * n]), np.arange(n))
        # pass p is the seeded permutation p: the stream is their concatenation
        np.testing.assert_array_equal(stream[p * n:(p + 1) * n], _perm(n, 5, p))


def test_wrapped_stream_is_a_pure_function_of_seed_and_step(paired_bank):
    n, b = paired_bank.size, 8
    steps = 2 * n // b
    full = _take(index_dataset(paired_bank, b, seed=1, steps=steps), 3 * steps)
    for start in (1, steps - 1, steps, 2 * steps + 3):
        tail = _take(index_dataset(paired_bank, b, seed=1, steps=steps, start_step=start), 4)
        for x, y in zip(full[start:start + 4], tail):
            np.testing.assert_array_equal(x["image"], y["image"])
    other = _take(index_dataset(paired_bank, b, seed=2, steps=steps), 3)
    assert any(not np.array_equal(x["image"], y["image"]) for x, y in zip(full, other))


def test_one_pass_or_less_keeps_the_per_epoch_permutation(paired_bank):
    """steps * B <= n: epoch e uses permutation (seed, e) cut into batches, as before the wrap-around."""
    n, b = paired_bank.size, 8
    for steps in (steps_per_epoch(paired_bank, b), 2):
        batches = _take(index_dataset(paired_bank, b, seed=3, steps=steps), 3 * steps)
        for s, x in enumerate(batches):
            e, pos = divmod(s, steps)
            np.testing.assert_array_equal(x["image"], _perm(n, 3, e)[pos * b:(pos + 1) * b])


def test_a_set_smaller_than_the_batch_is_one_whole_permutation_per_step(paired_bank):
    n = paired_bank.size
    for steps in (1, 3):
        batches = _take(index_dataset(paired_bank, n + 5, seed=0, steps=steps), 4)
        for s, x in enumerate(batches):
            np.testing.assert_array_equal(x["image"], _perm(n, 0, s))


@pytest.mark.trains
@pytest.mark.slow
def test_resume_with_wrapped_sampling_is_bitwise_identical(tmp_path):
    from cvs_tf.cli.train import main
    from cvs_tf.training.run_dir import load_run
    from tests.helpers import Crash

    ds = make_toy_featureset(tmp_path / "ds", paired=True, n_train=40, modalities={"image": 16, "text": 12})
    cfg = write_small_config(tmp_path / "small.json")
    n = load_feature_set(ds).count("image", "train")
    assert 7 * 8 > n  # 7 steps of 8 run past one permutation
    args = ["--dataset", str(ds), "--config", str(cfg), "--epochs", "2", "--batch-size", "8",
            "--steps-per-epoch", "7", "--no-jit", "--quiet", "--early-stopping", "none"]
    ref, run = tmp_path / "ref", tmp_path / "run"
    assert main([*args, "--out", str(ref)]) == 0
    with pytest.raises(KeyboardInterrupt):  # killed in epoch 2 after batch 1
        main([*args, "--out", str(run)], callbacks=[Crash(1, 1)])
    assert json.loads((run / "checkpoint" / "state.json").read_text())["epoch"] == 1
    assert main(["--resume", "--out", str(run), "--quiet"]) == 0
    h_ref = json.loads((ref / "history.json").read_text())["stages"][0]["epochs"]
    h_run = json.loads((run / "history.json").read_text())["stages"][0]["epochs"]
    assert [e["epoch"] for e in h_run] == [1, 2]
    for ea, eb in zip(h_ref, h_run):
        assert (ea["val_loss"], ea["val_map"]) == (eb["val_loss"], eb["val_map"])
        # the epoch mean of the training loss may differ in its last bit between two in-process
        # runs, interrupted or not; the weights below are compared bit for bit
        assert ea["loss"] == pytest.approx(eb["loss"], rel=1e-6)
    m_ref, _, _ = load_run(ref)
    m_run, _, _ = load_run(run)
    for a, b in zip(m_ref.get_weights(), m_run.get_weights()):
        np.testing.assert_array_equal(a, b)
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (ref, run)]
    assert metrics[0]["test"] == metrics[1]["test"] and metrics[0]["val"] == metrics[1]["val"]
