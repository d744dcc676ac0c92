"""tf.data index pipeline: class alignment, instance pairing, determinism and the missing-class rule."""

import numpy as np
import pytest

from cvs_tf.data.pipeline import (
    CLASS_RUN,
    LARGE_BATCH,
    FeatureBank,
    class_run,
    index_dataset,
    steps_per_epoch,
)
from cvs_tf.data.store import FeatureSetError, carve_validation, load_feature_set, save_feature_set
from tests.helpers import make_toy_featureset


def _take(ds, n):
    return [{m: v.numpy() for m, v in b.items()} for b in ds.take(n)]


def test_class_aligned_rows_share_labels(tmp_path):
    fs = load_feature_set(make_toy_featureset(tmp_path / "t"))
    bank = FeatureBank(fs, ["image", "text", "audio"])
    for idx in _take(index_dataset(bank, 8, seed=3), 5):
        labels = [fs.y(m, "train")[idx[m]] for m in idx]
        assert all(len(i) == 8 for i in idx.values())
        np.testing.assert_array_equal(labels[0], labels[1])
        np.testing.assert_array_equal(labels[0], labels[2])


def test_a_large_class_aligned_batch_holds_several_items_of_every_class_it_draws(tmp_path):
    """200 classes at B = 1024 (XMediaNet's): drawn one by one, about 6 classes a batch would have a single
    item; in runs of CLASS_RUN every class drawn has at least CLASS_RUN, and rows still share their label."""
    assert class_run(LARGE_BATCH - 1) == 1 and class_run(LARGE_BATCH) == class_run(1024) == CLASS_RUN >= 2
    fs = load_feature_set(make_toy_featureset(tmp_path / "t", n_classes=200, n_train=1200, n_test=200))
    bank = FeatureBank(fs, ["image", "text", "audio"])
    for idx in _take(index_dataset(bank, 1024, seed=5), 3):
        labels = [fs.y(m, "train")[idx[m]] for m in idx]
        assert all(len(i) == 1024 for i in idx.values())
        np.testing.assert_array_equal(labels[0], labels[1])
        np.testing.assert_array_equal(labels[0], labels[2])
        counts = np.bincount(labels[0], minlength=200)
        assert counts[counts > 0].min() >= CLASS_RUN and (counts > 0).sum() > 100
        for m in idx:  # the items of one class are drawn one per row, not one item repeated
            runs = idx[m].reshape(-1, CLASS_RUN)
            assert np.mean([len(set(r)) > 1 for r in runs]) > 0.5


def test_a_batch_below_the_large_size_draws_its_labels_one_by_one(tmp_path):
    """Below LARGE_BATCH the labels are B independent draws, as before runs existed (same batches)."""
    import tensorflow as tf

    fs = load_feature_set(make_toy_featureset(tmp_path / "t", n_classes=200, n_train=1200, n_test=200))
    bank = FeatureBank(fs, ["image", "text"])
    b = LARGE_BATCH - 1
    for step, idx in enumerate(_take(index_dataset(bank, b, seed=5), 2)):
        seed = tf.constant([5, step], tf.int64)
        pick = tf.random.stateless_uniform([b], seed=seed, maxval=len(bank.sampling_classes), dtype=tf.int32)
        want = bank.sampling_classes.numpy()[pick.numpy()]
        np.testing.assert_array_equal(fs.y("image", "train")[idx["image"]], want)


def test_batches_are_a_pure_function_of_seed_and_step(tmp_path):
    fs = load_feature_set(make_toy_featureset(tmp_path / "t"))
    bank = FeatureBank(fs, ["image", "text"])
    a = _take(index_dataset(bank, 8, seed=1), 6)
    b = _take(index_dataset(bank, 8, seed=1, start_step=3), 3)
    c = _take(index_dataset(bank, 8, seed=2), 6)
    for x, y in zip(a[3:], b):
        for m in x:
            np.testing.assert_array_equal(x[m], y[m])
    assert any(not np.array_equal(a[i]["image"], c[i]["image"]) for i in range(6))


def test_paired_batches_use_the_same_rows_and_cover_an_epoch(tmp_path):
    fs = load_feature_set(make_toy_featureset(tmp_path / "p", paired=True, n_train=48))
    bank = FeatureBank(fs, ["image", "text"])
    steps = steps_per_epoch(bank, 8)
    assert steps == bank.size // 8
    batches = _take(index_dataset(bank, 8, seed=0, steps=steps), steps)
    for b in batches:
        np.testing.assert_array_equal(b["image"], b["text"])
    seen = np.concatenate([b["image"] for b in batches])
    assert len(np.unique(seen)) == len(seen)  # no repeats within an epoch


def test_gather_returns_the_indexed_rows(tmp_path):
    fs = load_feature_set(make_toy_featureset(tmp_path / "t"))
    bank = FeatureBank(fs, ["image", "audio"])
    idx = _take(index_dataset(bank, 4, seed=0), 1)[0]
    x, y = bank.gather(idx)
    np.testing.assert_allclose(x["audio"].numpy(), np.asarray(fs.x("audio", "train"), np.float32)[idx["audio"]])
    np.testing.assert_array_equal(y["image"].numpy(), fs.y("image", "train")[idx["image"]])


def _set_missing_class(tmp_path, present_in_audio):
    rng = np.random.default_rng(0)
    data = {}
    for m, d in (("image", 5), ("audio", 3)):
        classes = [0, 1, 2] if m == "image" else present_in_audio
        y = np.repeat(classes, 6)
        data[m] = {"train": (rng.normal(size=(len(y), d)).astype(np.float32), y),
                   "test": (rng.normal(size=(len(y), d)).astype(np.float32), y)}
    data = carve_validation(data, 0.2, 0)
    return load_feature_set(save_feature_set(tmp_path / "m", "m", data, ["a", "b", "c"]))


def test_class_missing_in_a_modality_is_dropped_by_rule(tmp_path):
    fs = _set_missing_class(tmp_path, [0, 1])
    bank = FeatureBank(fs, ["image", "audio"])
    assert bank.dropped_classes == [2]
    for idx in _take(index_dataset(bank, 16, seed=0), 4):
        assert 2 not in set(fs.y("image", "train")[idx["image"]])


def test_fewer_than_two_shared_classes_is_a_clear_error(tmp_path):
    fs = _set_missing_class(tmp_path, [0])
    with pytest.raises(FeatureSetError, match="need >= 2 classes"):
        FeatureBank(fs, ["image", "audio"])
