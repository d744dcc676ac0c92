"""tf.data input pipeline: feature banks and seeded class-aligned or instance-paired batches, gathered in tf.data.

Features of the active modalities live once as tensors (:class:`FeatureBank`). The ``tf.data``
pipeline (:func:`feature_dataset`) draws *index* batches, gathers their rows from the bank on its
own threads and prefetches them, so the compiled train step takes plain ``(features, labels)``
batches and captures no feature tensor: it can be compiled before any bank exists. Nothing is
re-read from disk per step.

Every global batch is a pure function of ``(seed, global_step)`` (stateless RNG), so a run resumed
at epoch ``e`` sees exactly the batches an uninterrupted run would have seen, whatever the number of
replicas: with ``N`` replicas (:class:`ReplicaShard`) each global batch of ``B`` rows is cut into
``N`` consecutive blocks of ``B/N`` rows, replica ``r`` gets rows ``[r*B/N, (r+1)*B/N)``, and the
model all-gathers the blocks back in replica order before mining (docs/scaling.md).

* **Class-aligned** (XMedia-like sets, items paired only by class): draw ``B`` labels uniformly
  from the classes present in *every* active modality, then for each label one item of that
  label from each modality, uniformly. Row ``i`` of every modality then shares label ``i``. From
  ``B`` = :data:`LARGE_BATCH` on, the labels are drawn in runs of :data:`CLASS_RUN` rows (``B /
  CLASS_RUN`` uniform draws, each label repeated on consecutive rows, the items still drawn one per
  row), so that every class in a large batch holds at least ``CLASS_RUN`` items: with many classes
  (XMediaNet's 200 at B = 1024: about 5 items a class on average, and some 6 classes with a
  single item in every batch when drawn one by one) every anchor still has positives.
* **Instance-paired** (Pascal, Wikipedia, Tux-12): a seeded permutation of the paired rows per
  epoch, cut into batches of ``B`` (the last partial batch is dropped); row ``i`` of every
  modality is the same item. With more steps per epoch than one permutation holds, the batches
  run on through successive permutations (:func:`index_dataset`).

A class with no training items in one of the active modalities cannot be aligned; by the
documented rule it is dropped from sampling for that stage (``FeatureBank.dropped_classes``).
If fewer than 2 classes remain, :class:`FeatureSetError` is raised.

Memory (cvs_tf.data.pages): a float32 ``.npy`` is not copied at all: its bank tensor lies over
the file's pages (:func:`mapped_tensor`), which the OS page cache holds and shares between
processes, and :func:`feature_dataset` drops the pages each batch touched from this process's
resident set right after gathering it. Other arrays (float16 files, in-memory arrays) are held
as one float32 copy: :func:`host_tensor` fills a 64-byte-aligned buffer in row chunks,
converting on the fly, releases the mapped file pages behind each chunk, and hands the buffer to
TensorFlow without a second copy (DLPack). The banks stay in host memory; tf.data gathers each
batch there and the distribution strategy copies it to the replica's device. Peak resident
memory of a training run is measured by ``bench/scale.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from cvs_tf.data.pages import (  # noqa: F401  (host_tensor, release_feature_set: this module's API too)
    drop_pages,
    host_tensor,
    mapped_tensor,
    release_feature_set,
    release_pages,
)
from cvs_tf.data.store import FeatureSet, FeatureSetError


class FeatureBank:
    """Float32 features and labels of some modalities of one split, as tensors.

    With ``mapped`` (the default) a modality stored as a whole memory-mapped float32 ``.npy`` is a
    tensor over the file's pages (:func:`mapped_tensor`: no copy; the pages live in the OS page
    cache, and :func:`feature_dataset` releases them from this process after every batch);
    anything else (float16 files, in-memory arrays) is copied once (:func:`host_tensor`).
    """

    def __init__(self, fs: FeatureSet, modalities: list[str], split: str = "train", mapped: bool = True):
        self.modalities = list(modalities)
        self.split = split
        self.paired = fs.paired
        self.multi_label = fs.label_kind == "multi"
        self.num_classes = fs.num_classes
        self.features: dict[str, tf.Tensor] = {}
        self.labels: dict[str, tf.Tensor] = {}
        self.np_labels: dict[str, np.ndarray] = {}
        self._mappings: list[np.ndarray] = []  # the file views behind mapped tensors
        for m in self.modalities:
            x = fs.x(m, split)
            y = np.asarray(fs.y(m, split))
            if len(x) == 0:
                raise FeatureSetError(f"{fs.name}: modality {m!r} has no {split} items")
            found = mapped_tensor(x) if mapped else None
            if found is not None:
                self.features[m] = found[0]
                self._mappings.append(found[1])
            else:
                self.features[m] = host_tensor(x)
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

    @property
    def mapped(self) -> bool:
        """Whether some modality's tensor lies over file pages (:func:`mapped_tensor`)."""
        return bool(self._mappings)

    def release_mapped(self) -> np.int64:
        """Drop the file pages the mapped tensors touched from this process's resident set (they stay in the
        page cache and fault back in when read; the mappings are never written)."""
        for view in self._mappings:
            drop_pages(view)
        return np.int64(0)

    def gather_released(self, indices: dict[str, tf.Tensor]):
        """:meth:`gather`, then (for a mapped bank) the release of the pages it touched (tf.data only: not XLA-compilable)."""
        x, y = self.gather(indices)
        if not self.mapped:
            return x, y
        with tf.control_dependencies(tf.nest.flatten(x)):
            done = tf.numpy_function(self.release_mapped, [], tf.int64, stateful=True)
        with tf.control_dependencies([done]):
            return {m: tf.identity(v) for m, v in x.items()}, y


def row_batches(x, batch_size: int):
    """Yields ``x[a:a + batch_size]`` for consecutive row blocks; once the caller has used a block
    (the generator resumes), the mapped pages behind it leave the resident set
    (:func:`release_pages`; nothing happens for an in-memory array or a tensor)."""
    for a in range(0, len(x), batch_size):
        yield x[a:a + batch_size]
        if isinstance(x, np.ndarray):
            release_pages(x, a, a + batch_size)


def steps_per_epoch(bank: FeatureBank, batch_size: int) -> int:
    """Default steps per epoch: one pass over the largest modality (at least 1)."""
    if bank.paired:
        return max(1, bank.size // batch_size)
    return max(1, math.ceil(bank.size / batch_size))


LARGE_BATCH = 512  # from this class-aligned batch size on, labels are drawn in runs of CLASS_RUN rows
CLASS_RUN = 4


def class_run(batch_size: int) -> int:
    """Consecutive rows given each drawn label of a class-aligned batch: 1 below :data:`LARGE_BATCH`, else :data:`CLASS_RUN`."""
    return CLASS_RUN if batch_size >= LARGE_BATCH else 1


def _class_aligned_indices(bank: FeatureBank, batch_size: int, seed: int, step):
    s = tf.stack([tf.constant(seed, tf.int64), tf.cast(step, tf.int64)])
    n_cls = tf.shape(bank.sampling_classes)[0]
    run = class_run(batch_size)
    pick = tf.random.stateless_uniform([-(-batch_size // run)], seed=s, maxval=n_cls, dtype=tf.int32)
    labels = tf.gather(bank.sampling_classes, pick)
    if run > 1:
        labels = tf.repeat(labels, run)[:batch_size]
    out = {}
    for j, m in enumerate(bank.modalities):
        u = tf.random.stateless_uniform([batch_size], seed=s + tf.constant([0, 1], tf.int64) * (j + 1) * 1_000_003)
        cnt = tf.gather(bank.class_counts[m], labels)
        within = tf.minimum(tf.cast(tf.floor(u * tf.cast(cnt, tf.float32)), tf.int32), cnt - 1)
        pos = tf.gather(bank.class_offsets[m], labels) + within
        out[m] = tf.gather(bank.sorted_rows[m], pos)
    return out


def _permutation(n: int, seed: int, k):
    """Seeded permutation ``k`` of ``range(n)`` (int32)."""
    return tf.random.experimental.stateless_shuffle(
        tf.range(n, dtype=tf.int32), seed=tf.stack([tf.constant(seed, tf.int64), tf.cast(k, tf.int64)])
    )


def _paired_indices(bank: FeatureBank, batch_size: int, seed: int, step, steps: int, replicas: int = 1):
    """Rows of global step ``step``; see :func:`index_dataset` for the three regimes."""
    step = tf.cast(step, tf.int64)
    n, b = bank.size, batch_size
    if n <= b:  # the batch is the whole set (a multiple of the replicas of it), one permutation per step
        rows = global_batch_rows(n, b, True, replicas)
        idx = tf.ensure_shape(_permutation(n, seed, step)[:rows], [rows])
    elif steps * b <= n:  # permutation per epoch, cut into batches; the rest of it is dropped
        epoch, pos = step // steps, step % steps
        idx = tf.ensure_shape(_permutation(n, seed, epoch)[pos * b : (pos + 1) * b], [b])
    else:  # more than one pass per epoch: the stream of successive permutations, B items per step
        start = step * b
        p, off = start // n, start % n
        two = tf.concat([_permutation(n, seed, p), _permutation(n, seed, p + 1)], 0)
        idx = tf.ensure_shape(two[off : off + b], [b])
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
    Paired sets of ``n`` items, seeded permutations ``P_0, P_1, ...`` of their rows:

    * ``steps * batch_size <= n`` (the default one pass, or fewer steps): epoch ``e`` cuts
      ``P_e`` into batches and drops the rest of it;
    * more steps than one pass holds: step ``s`` takes items ``[s*B, (s+1)*B)`` of the
      concatenation ``P_0 P_1 ...``, so every batch is full, a batch may straddle two
      permutations, and every item comes once per pass;
    * ``n <= batch_size``: the batch is the whole set, step ``s`` takes ``P_s`` (under ``N`` replicas
      of :func:`feature_dataset`, its first ``n - n % N`` items: see :func:`global_batch_rows`).

    Each batch stays a pure function of ``(seed, step)`` in all three, so resume is exact.
    """
    return _global_indices(bank, batch_size, seed, start_step, num_steps, steps).prefetch(tf.data.AUTOTUNE)


def _global_indices(bank, batch_size, seed, start_step, num_steps, steps, replicas: int = 1) -> tf.data.Dataset:
    steps = steps or steps_per_epoch(bank, batch_size)
    end = None if num_steps is None else start_step + num_steps
    ds = tf.data.Dataset.range(start_step, end if end is not None else np.iinfo(np.int64).max)
    if bank.paired:
        return ds.map(lambda s: _paired_indices(bank, batch_size, seed, s, steps, replicas))
    return ds.map(lambda s: _class_aligned_indices(bank, batch_size, seed, s))


PREFETCH = 2  # gathered batches kept ready ahead of the step (a few MiB each at XMedia sizes)


@dataclass(frozen=True)
class ReplicaShard:
    """The replicas one input pipeline feeds: global replicas ``first … first + count - 1`` of ``replicas``.

    Replica ``r`` of a step gets rows ``[r*B/N, (r+1)*B/N)`` of the step's global batch of ``B``
    rows (``N = replicas``); a pipeline yields one element per replica it feeds, in replica order,
    which is the order in which ``tf.distribute`` hands a worker's elements to its local replicas.
    """

    replicas: int = 1
    first: int = 0
    count: int = 1

    def __post_init__(self):
        if not (self.replicas >= 1 and self.count >= 1 and 0 <= self.first and self.first + self.count <= self.replicas):
            raise ValueError(f"replica shard {self.first}..{self.first + self.count - 1} outside 0..{self.replicas - 1}")


def global_batch_rows(bank_or_count, batch_size: int, paired: bool | None = None, replicas: int = 1) -> int:
    """Rows of every global batch: ``batch_size``; for a paired set of ``n <= batch_size`` items the whole
    set, or under ``replicas`` replicas its largest multiple of ``replicas`` (the first rows of the step's permutation)."""
    n, paired = (bank_or_count.size, bank_or_count.paired) if paired is None else (bank_or_count, paired)
    if not paired or n > batch_size:
        return batch_size
    return n - n % replicas


def per_replica_rows(rows: int, replicas: int) -> int:
    """``rows // replicas``; ``ValueError`` unless the global batch splits evenly over the replicas."""
    if rows % replicas:
        raise ValueError(f"a global batch of {rows} rows does not split evenly over {replicas} replicas "
                         f"(choose a batch size divisible by {replicas})")
    return rows // replicas


def feature_dataset(bank: FeatureBank, batch_size: int = 128, seed: int = 0, start_step: int = 0,
                    num_steps: int | None = None, steps: int | None = None,
                    shard: ReplicaShard | None = None) -> tf.data.Dataset:
    """Dataset of ``(features, labels)`` batches (``{modality: rows}`` dicts) gathered in tf.data from ``bank``.

    The global batches are those of :func:`index_dataset` (same arguments). Without ``shard``
    (or with one replica) each element is a global batch; with a :class:`ReplicaShard` each step
    yields ``shard.count`` elements of ``B / shard.replicas`` rows, the blocks of that step's
    global batch for the shard's replicas, in order. The gather runs on tf.data's threads, then
    :data:`PREFETCH` batches are prefetched.
    """
    n = 1 if shard is None else shard.replicas
    ds = _global_indices(bank, batch_size, seed, start_step, num_steps, steps, n)
    if n > 1:
        lo, hi = shard.first, shard.first + shard.count
        per = per_replica_rows(global_batch_rows(bank, batch_size, replicas=n), n)
        ds = ds.map(lambda idx: {m: tf.reshape(v, [n, per])[lo:hi] for m, v in idx.items()}).unbatch()
    ds = ds.map(bank.gather_released, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(PREFETCH).with_options(_NO_GRAPH_REWRITES)


# tf.data's default graph optimizations serialize the dataset graph when an iterator is made, a
# transient copy of every tensor the gather captures (the whole bank); this pipeline is explicitly
# parallel and prefetched, so they have nothing to add. Its elements come in order (issue #20).
_NO_GRAPH_REWRITES = tf.data.Options()
_NO_GRAPH_REWRITES.experimental_optimization.apply_default_optimizations = False
_NO_GRAPH_REWRITES.deterministic = True


def batch_spec(fs: FeatureSet, modalities: list[str], rows: int):
    """The ``(features, labels)`` element spec of :func:`feature_dataset` batches of ``rows`` rows of ``fs``."""
    multi = fs.label_kind == "multi"
    x = {m: tf.TensorSpec((rows, fs.dim(m)), tf.float32) for m in modalities}
    y = {m: tf.TensorSpec((rows, fs.num_classes) if multi else (rows,), tf.float32 if multi else tf.int32)
         for m in modalities}
    return x, y


def zero_dataset(spec) -> tf.data.Dataset:
    """An endless dataset of all-zero elements of ``spec`` (to compile a step before any feature is loaded)."""
    zeros = tf.nest.map_structure(lambda s: tf.zeros(s.shape, s.dtype), spec)
    return tf.data.Dataset.from_tensors(zeros).repeat()
