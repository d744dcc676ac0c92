"""LossMixin: the tracked loss terms, their computation and the train/test steps shared by every space.

Under a ``tf.distribute`` strategy with ``N`` replicas each replica holds ``B/N`` consecutive rows
of the global batch (cvs_tf.data.pipeline.ReplicaShard). :meth:`LossMixin.compute_losses`
all-gathers the per-row loss inputs (labels, logits, the pairs' embeddings) in replica order
before the mining, so every replica computes the loss of the whole global batch, and
:meth:`LossMixin.train_step` differentiates ``loss / N``: all_gather's gradient sums the
replicas' upstream gradients, and Keras sums the replicas' variable gradients, so the applied
gradient equals the one-device gradient of the same ``B`` rows (docs/scaling.md).
"""

from __future__ import annotations

import contextlib
import dataclasses

import keras
import tensorflow as tf

from cvs_tf.config import LossConfig
from cvs_tf.losses import (
    PairLoss,
    classification_loss,
    get_pair_loss,
    instance_infonce,
    reconstruction_loss,
)


def pair_key(a: str, b: str) -> str:
    """Name of the block / metric for the ordered pair (a, b)."""
    return f"{a}__{b}"


def replicas_in_sync() -> int:
    """Replicas taking part in the current step (1 outside a distribution strategy or in cross-replica context)."""
    ctx = tf.distribute.get_replica_context()
    return 1 if ctx is None else int(ctx.num_replicas_in_sync)


def gather_replicas(tensors):
    """The global batch: every replica's rows of each tensor of the nest, all-gathered along axis 0 in
    replica order; the nest itself with one replica. The gradient of each gathered tensor flows back
    to the replica's own rows (summed over the replicas that used them)."""
    if replicas_in_sync() == 1:
        return tensors
    ctx = tf.distribute.get_replica_context()
    with _replica_device():  # (the step's inputs come from outside any device scope)
        flat = [tf.identity(t) for t in tf.nest.flatten(tensors)]
    # integer tensors (labels) apart: one batched all_gather (and its gradient's all-reduce) per dtype kind
    ints = [i for i, t in enumerate(flat) if t.dtype.is_integer]
    floats = [i for i in range(len(flat)) if i not in ints]
    out = list(flat)
    for group in (ints, floats):
        if group:
            for i, t in zip(group, ctx.all_gather([flat[i] for i in group], axis=0)):
                out[i] = t
    return tf.nest.pack_sequence_as(tensors, out)


def _replica_device():
    """The device scope of a replica step: this worker's one device when it has one replica among several
    (MultiWorkerMirroredStrategy places such a step nowhere, and its all_gather needs a device), else none."""
    if replicas_in_sync() > 1:
        devices = tf.distribute.get_strategy().extended.worker_devices
        if len(devices) == 1:
            return tf.device(devices[0])
    return contextlib.nullcontext()


MINING_CHUNK_BYTES = 64 << 20  # pairs mined together keep their O(B³) selection cubes under this


def pairs_per_group(batch: int) -> int:
    """How many pairs are mined together at batch ``batch``: as many as keep their mining cubes (up to
    4 terms × 10 bytes × B³ per pair) under :data:`MINING_CHUNK_BYTES`, at least one."""
    return max(1, MINING_CHUNK_BYTES // (40 * batch**3))


def pair_chunks(pairs: list, batch: int | None) -> list[list]:
    """``pairs`` cut into consecutive groups of :func:`pairs_per_group`: every pair alone at B = 128,
    all together at B <= 32; one group when B is unknown."""
    size = len(pairs) if batch is None else pairs_per_group(batch)
    return [pairs[i:i + size] for i in range(0, len(pairs), size)]


def after(t, prev):
    """``t`` plus an exact zero computed from ``prev``: the data dependency makes XLA (and the graph
    executor) finish ``prev`` before starting on ``t``, so two groups' cubes are never live together."""
    if prev is None:
        return t
    return t + 0.0 * tf.cast(tf.math.is_nan(tf.reduce_sum(prev)), t.dtype)


def _multi_worker() -> bool:
    """Whether the step runs under a multi-worker collective strategy (Keras reduces its step logs with an axis)."""
    ext = tf.distribute.get_strategy().extended
    return bool(getattr(ext, "_in_multi_worker_mode", lambda: False)())


class LossMixin:
    """Loss part of :class:`cvs_tf.models.base.CrossModalModel`: trackers, ``compute_losses``, ``train_step``/``test_step``.

    The pair loss is the registered kind ``loss_weights["kind"]`` (:mod:`cvs_tf.losses.registry`); the
    tracked names are ``loss``, ``classification``, the kind's total name (``triplet`` for the default),
    ``{a}__{b}.{term}`` for each active pair and term of the kind, ``instance`` and ``{a}__{b}.instance``
    when the instance term is on (``instance_weight`` > 0), and ``reconstruction`` when on.

    ``replica_gather`` (True) all-gathers the replicas' loss inputs before the mining; False leaves
    every replica mining its own rows (what plain data parallelism does: a different loss, kept only
    so that a test can show the difference).
    """

    replica_gather = True

    @staticmethod
    def loss_options(overrides: dict | None = None) -> dict:
        """The :class:`~cvs_tf.config.LossConfig` defaults (their one home) updated with ``overrides``."""
        return {**dataclasses.asdict(LossConfig()), **(overrides or {})}

    @property
    def pair_loss(self) -> PairLoss:
        """The registered pair-loss kind of this model (``ValueError`` naming the known kinds if unregistered)."""
        return get_pair_loss(self.loss_weights["kind"])

    @property
    def instance_on(self) -> bool:
        """Whether the instance term (InfoNCE over true pairs, :func:`cvs_tf.losses.instance_infonce`) is trained."""
        return self.loss_weights["instance_weight"] > 0

    def _make_trackers(self):
        kind = self.pair_loss
        names = ["loss", "classification", kind.total_name]
        for a, b in self.active_pairs():
            names += [f"{pair_key(a, b)}.{t}" for t in kind.term_names(a, b).values()]
        if self.instance_on:
            names += ["instance"] + [f"{pair_key(a, b)}.instance" for a, b in self.active_pairs()]
        if self.decoders:
            names.append("reconstruction")
        self._tracker_names = names
        self._trackers = {n: keras.metrics.Mean(name=n) for n in names}

    @property
    def metrics(self):
        return list(self._trackers.values())

    def compute_losses(self, x: dict, y: dict, training: bool = False) -> dict:
        """Every loss component for one batch; shared by train_step and test_step.

        The model part (branches, classifier, attention blocks) is :meth:`loss_inputs`; the label
        part (cross-entropy and the semi-hard triplet mining, O(B³) elementwise work per term) is
        :meth:`loss_terms`, XLA-compiled on its own when the model was compiled with
        ``jit_compile="loss"`` (see :meth:`compile`); the optional reconstruction term is added here.
        Under ``N`` replicas the per-row inputs of :meth:`loss_terms` are all-gathered first
        (:func:`gather_replicas`; the model part is row-wise, so this is the one-device batch), and the
        reconstruction, a mean over equal-sized shards, is the replica's own (its mean over replicas
        is the global one).
        """
        labels, logits, pair_emb, e = self.loss_inputs(x, y, training=training)
        if self.replica_gather:
            labels, logits, pair_emb = gather_replicas((labels, logits, pair_emb))
        fn = self._xla_loss_terms if getattr(self, "_loss_xla", False) else self.loss_terms
        out = dict(fn(labels, logits, pair_emb))
        loss = out["loss"]
        if self.decoders:
            rec = [reconstruction_loss(tf.cast(x[m], tf.float32), tf.cast(self.decoders[m](e[m]), tf.float32))
                   for m in logits if m in self.decoders]
            out["reconstruction"] = tf.add_n(rec) / len(rec)
            loss = loss + self.loss_weights["reconstruction_weight"] * out["reconstruction"]
        out["loss"] = loss
        return out

    def loss_terms(self, labels: dict, logits: dict, pair_emb: dict) -> dict:
        """Classification and pair-loss terms from labels, classifier logits and per-pair embeddings.

        ``logits`` maps each classified modality to its (B, C) logits; ``pair_emb`` maps each
        active pair key ``a__b`` to its (attended) L2-normalised embeddings ``(e_a, e_b)``. The active
        pairs are stacked and the pair-loss kind is called once per group of them (:func:`pair_chunks`;
        one batched op per term and group: the per-pair form traced ~1000 ops per pair), the groups
        one after the other (:func:`after`), so that only one group's O(B³) mining is in memory at a
        time (at B = 128: 0.52 → 0.10 GiB for the 10 pairs of a 5-modality CVS, and a faster step;
        docs/scaling.md). With ``instance_weight`` > 0 the instance term of each pair (row i of a and b
        the same item) is computed on the same stacked embeddings. Returns the tracked components and
        ``loss = alpha * classification + beta * mean(total) + instance_weight * mean(instance)`` (without
        reconstruction). A pure function of its arguments, so it can be XLA-compiled.
        """
        lw, kind = self.loss_weights, self.pair_loss
        out = {}
        smooth = lw["label_smoothing"]
        out["classification"] = tf.add_n([classification_loss(labels[m], lg, smooth) for m, lg in logits.items()]) / len(logits)
        if lw["learn_temperature"]:  # the kinds see the learnt temperature in place of the initial value
            lw = {**lw, "temperature": self.temperature_layer.temperature()}
        pairs, totals, instance = self.active_pairs(), [], []
        for group in pair_chunks(pairs, pair_emb[pair_key(*pairs[0])][0].shape[0]):
            keys = [pair_key(a, b) for a, b in group]
            prev = totals[-1] if totals else None
            ex = after(tf.stack([pair_emb[k][0] for k in keys]), prev)
            ey = after(tf.stack([pair_emb[k][1] for k in keys]), prev)
            terms = kind(tf.stack([labels[a] for a, _ in group]), ex, tf.stack([labels[b] for _, b in group]), ey, lw)
            if self.instance_on:
                instance.append(instance_infonce(ex, ey, lw["instance_temperature"]))
            for i, (a, b) in enumerate(group):
                for term, name in kind.term_names(a, b).items():
                    out[f"{pair_key(a, b)}.{name}"] = terms[term][i]
                if self.instance_on:
                    out[f"{pair_key(a, b)}.instance"] = instance[-1][i]
            totals.append(terms["total"])
        out[kind.total_name] = tf.reduce_mean(tf.concat(totals, 0))
        out["loss"] = lw["alpha"] * out["classification"] + lw["beta"] * out[kind.total_name]
        if self.instance_on:
            out["instance"] = tf.reduce_mean(tf.concat(instance, 0))
            out["loss"] = out["loss"] + lw["instance_weight"] * out["instance"]
        return out

    def _update(self, losses):
        for n, t in self._trackers.items():
            t.update_state(losses[n])
        if _multi_worker():  # Keras reduces multi-worker step logs along axis 0: give them one
            return {n: tf.reshape(t.result(), [1]) for n, t in self._trackers.items()}
        return {n: t.result() for n, t in self._trackers.items()}

    def _unpack(self, data):
        """Batches are ``(features, labels)`` dicts (cvs_tf.data.pipeline.feature_dataset), or index dicts
        gathered inside the step from an attached FeatureBank (:meth:`attach_bank`)."""
        if isinstance(data, tuple) and len(data) == 2:
            return data
        return self.bank.gather(data)

    def attach_bank(self, bank):
        """Attach a FeatureBank to gather index batches from inside the step (a convenience for small
        experiments and tests; the Trainer gathers in tf.data, so its compiled step captures no features)."""
        object.__setattr__(self, "_bank", bank)

    @property
    def bank(self):
        bank = getattr(self, "_bank", None)
        if bank is None:
            raise RuntimeError("index batches need a FeatureBank: call model.attach_bank(bank) first")
        return bank

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras' symbolic build before fit/evaluate under a strategy pulls one batch and reduces it with
        # strategy.reduce, which fails on a dict batch under MultiWorkerMirroredStrategy (keras-team/keras
        # #20585); this model and (once compiled steps ran) its optimizer are built already.
        if self.built and getattr(self.optimizer, "built", False):
            return None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def losses_and_gradients(self, x: dict, y: dict):
        """``(losses, grads)`` of one training batch: the logged loss terms, and the gradients (in
        ``trainable_variables`` order, None for an unused variable) of this replica's share ``loss / N``,
        scaled as the optimizer's ``scale_loss`` asks; summed over the replicas they are the one-device gradients."""
        with tf.GradientTape() as tape:
            losses = self.compute_losses(x, y, training=True)
            n = replicas_in_sync()
            scaled = losses["loss"] / n if n > 1 else losses["loss"]
            if hasattr(self.optimizer, "scale_loss"):
                scaled = self.optimizer.scale_loss(scaled)
        return losses, tape.gradient(scaled, self.trainable_variables)

    def train_step(self, data):
        with _replica_device():
            x, y = self._unpack(data)
            losses, grads = self.losses_and_gradients(x, y)
            # None gradients (parts unused by this stage's losses) are skipped by the optimizer, which is
            # still built over every trainable variable, so its state layout is stable for --resume.
            self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
            return self._update(losses)

    def test_step(self, data):
        with _replica_device():
            x, y = self._unpack(data)
            return self._update(self.compute_losses(x, y, training=False))
