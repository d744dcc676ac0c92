"""tf.data input pipeline: device-resident feature banks and seeded class-aligned or instance-paired index batches.

Features of the active modalities live once as tensors (:class:`FeatureBank`); the ``tf.data``
pipeline only yields *index* batches, and the model gathers the rows on its device inside
``train_step``. Nothing is re-read per step.

Every batch is a pure function of ``(seed, global_step)`` (stateless RNG), so a run resumed at
epoch ``e`` sees exactly the batches an uninterrupted run would have seen.

* **Class-aligned** (XMedia-like sets, items paired only by class): draw ``B`` labels uniformly
  from the classes present in *every* active modality, then for each label one item of that
  label from each modality, uniformly. Row ``i`` of every modality then shares label ``i``.
* **Instance-paired** (Pascal, Wikipedia, Tux-12): a seeded permutation of the paired rows per
  epoch, cut into batches of ``B`` (the last partial batch is dropped); row ``i`` of every
  modality is the same item.

A class with no training items in one of the active modalities cannot be aligned; by the
documented rule it is dropped from sampling for that stage (``FeatureBank.dropped_classes``).
If fewer than 2 classes remain, :class:`FeatureSetError` is raised.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from cvs_tf.data.store import FeatureSet, FeatureSetError


class FeatureBank:
    """Float32 features and labels of some modalities of one split, held as tensors."""

    def __init__(self, fs: FeatureSet, modalities: list[str], split: str = "train"):
        self.modalities = list(modalities)
        self.split = split
        self.paired = fs.paired
        self.multi_label = fs.label_kind == "multi"
        self.num_classes = fs.num_classes
        self.features: dict[str, tf.Tensor] = {}
        self.labels: dict[str, tf.Tensor] = {}
        self.np_labels: dict[str, np.ndarray] = {}
        for m in self.modalities:
            x = np.asarray(fs.x(m, split), dtype=np.float32)
            y = np.asarray(fs.y(m, split))
            if len(x) == 0:
                raise FeatureSetError(f"{fs.name}: modality {m!r} has no {split} items")
            self.features[m] = tf.constant(x)
            self.labels[m] = tf.constant(y.astype(np.float32 if self.multi_label else np.int32))
            self.np_labels[m] = y
        self.counts = {m: int(self.features[m].shape[0]) for m in self.modalities}
        self.dropped_classes: list[int] = []
        if not self.paired:
            self._index_by_class()

    def _index_by_class(self):
        """Per modality: rows sorted by class, with per-class offsets and counts (for O(1) sampling)."""
        self.sorted_rows, self.class_offsets, self.class_counts = {}, {}, {}
        present = np.ones(self.num_classes, dtype=bool)
        for m in self.modalities:
            y = self.np_labels[m]
            strata = y if y.ndim == 1 else np.where(y.any(1), y.argmax(1), -1)
            order = np.argsort(strata, kind="stable")
            counts = np.bincount(strata[strata >= 0], minlength=self.num_classes)
            offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]) + int((strata < 0).sum())
            self.sorted_rows[m] = tf.constant(order.astype(np.int32))
            self.class_offsets[m] = tf.constant(offsets.astype(np.int32))
            self.class_counts[m] = tf.constant(counts.astype(np.int32))
            present &= counts > 0
        self.dropped_classes = [int(c) for c in np.flatnonzero(~present)]
        self.sampling_classes = tf.constant(np.flatnonzero(present).astype(np.int32))
        if int(present.sum()) < 2:
            raise FeatureSetError(
                f"class-aligned batches need >= 2 classes present in every modality of "
                f"{self.modalities}; only {int(present.sum())} are"
            )

    @property
    def size(self) -> int:
        """Items per epoch: the paired count, or the largest modality's count."""
        return max(self.counts.values())

    def gather(self, indices: dict[str, tf.Tensor]):
        """Features and labels for index batches ({modality: (B,) int32})."""
        x = {m: tf.gather(self.features[m], indices[m]) for m in indices}
        y = {m: tf.gather(self.labels[m], indices[m]) for m in indices}
        return x, y


def steps_per_epoch(bank: FeatureBank, batch_size: int) -> int:
    """Default steps per epoch: one pass over the largest modality (at least 1)."""
    if bank.paired:
        return max(1, bank.size // batch_size)
    return max(1, math.ceil(bank.size / batch_size))


def _class_aligned_indices(bank: FeatureBank, batch_size: int, seed: int, step):
    s = tf.stack([tf.constant(seed, tf.int64), tf.cast(step, tf.int64)])
    n_cls = tf.shape(bank.sampling_classes)[0]
    pick = tf.random.stateless_uniform([batch_size], seed=s, maxval=n_cls, dtype=tf.int32)
    labels = tf.gather(bank.sampling_classes, pick)
    out = {}
    for j, m in enumerate(bank.modalities):
        u = tf.random.stateless_uniform([batch_size], seed=s + tf.constant([0, 1], tf.int64) * (j + 1) * 1_000_003)
        cnt = tf.gather(bank.class_counts[m], labels)
        within = tf.minimum(tf.cast(tf.floor(u * tf.cast(cnt, tf.float32)), tf.int32), cnt - 1)
        pos = tf.gather(bank.class_offsets[m], labels) + within
        out[m] = tf.gather(bank.sorted_rows[m], pos)
    return out


def _paired_indices(bank: FeatureBank, batch_size: int, seed: int, step, steps: int):
    step = tf.cast(step, tf.int64)
    epoch, pos = step // steps, step % steps
    n = bank.size
    perm = tf.random.experimental.stateless_shuffle(
        tf.range(n, dtype=tf.int32), seed=tf.stack([tf.constant(seed, tf.int64), epoch])
    )
    idx = perm[pos * batch_size : (pos + 1) * batch_size]
    idx = tf.ensure_shape(idx, [batch_size]) if n >= batch_size else idx
    return {m: idx for m in bank.modalities}


def index_dataset(
    bank: FeatureBank,
    batch_size: int = 128,
    seed: int = 0,
    start_step: int = 0,
    num_steps: int | None = None,
    steps: int | None = None,
) -> tf.data.Dataset:
    """Dataset of index batches ``{modality: (B,) int32}`` for global steps ``start_step ...``.

    ``steps`` is the steps-per-epoch used to cut paired permutations (default
    :func:`steps_per_epoch`); ``num_steps`` limits the stream (default: unbounded).
    For paired sets with fewer than ``batch_size`` items the batch is the whole set.
    """
    steps = steps or steps_per_epoch(bank, batch_size)
    end = None if num_steps is None else start_step + num_steps
    ds = tf.data.Dataset.range(start_step, end if end is not None else np.iinfo(np.int64).max)
    if bank.paired:
        ds = ds.map(lambda s: _paired_indices(bank, batch_size, seed, s, steps))
    else:
        ds = ds.map(lambda s: _class_aligned_indices(bank, batch_size, seed, s))
    return ds.prefetch(tf.data.AUTOTUNE)
