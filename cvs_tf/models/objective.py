"""The loss objective of a model (:class:`Objective`: the pair-loss kind, its options, cost and pair grouping) and the train/test steps.

:class:`Objective` is built from the loss options (the :class:`~cvs_tf.config.LossConfig` fields:
kind, temperature, margins, weights) and computes every loss term from explicit arguments;
:class:`LossMixin` gives :class:`cvs_tf.models.base.CrossModalModel` its trackers and steps around
the model's ``objective``.

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
    PairCost,
    PairLoss,
    classification_loss,
    get_pair_loss,
    instance_infonce,
    reconstruction_loss,
)
from cvs_tf.losses.registry import GROUP_BYTES, Memory


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


def after(t, prev):
    """``t`` plus an exact zero computed from ``prev``: the data dependency makes XLA (and the graph
    executor) finish ``prev`` before starting on ``t``, so two groups' terms are never live together."""
    if prev is None:
        return t
    return t + 0.0 * tf.cast(tf.math.is_nan(tf.reduce_sum(prev)), t.dtype)


def _multi_worker() -> bool:
    """Whether the step runs under a multi-worker collective strategy (Keras reduces its step logs with an axis)."""
    ext = tf.distribute.get_strategy().extended
    return bool(getattr(ext, "_in_multi_worker_mode", lambda: False)())


INSTANCE_COST = PairCost(square=40)  # the instance InfoNCE of one pair: logits, softmax and gradients, both ways


def loss_options(overrides: dict | None = None) -> dict:
    """The :class:`~cvs_tf.config.LossConfig` defaults (their one home) updated with ``overrides``."""
    return {**dataclasses.asdict(LossConfig()), **(overrides or {})}


class Objective:
    """A model's loss: the registered pair-loss kind ``options["kind"]`` with its options, its cost and its terms.

    ``options`` are the loss options (:func:`loss_options`: the ``LossConfig`` fields). The tracked
    names are ``loss``, ``classification``, the kind's total name (``triplet`` for the default),
    ``{a}__{b}.{term}`` for each trained pair and term of the kind, ``instance`` and
    ``{a}__{b}.instance`` when the instance term is on (``instance_weight`` > 0), and
    ``reconstruction`` when on. ``ValueError`` naming the known kinds for an unregistered kind.
    """

    def __init__(self, options: dict | None = None):
        self.options = loss_options(options)
        self.kind: PairLoss = get_pair_loss(self.options["kind"])

    @property
    def instance_on(self) -> bool:
        """Whether the instance term (InfoNCE over true pairs, :func:`cvs_tf.losses.instance_infonce`) is trained."""
        return self.options["instance_weight"] > 0

    @property
    def reconstruction_on(self) -> bool:
        return self.options["reconstruction_weight"] > 0

    @property
    def memory_rows(self) -> int:
        """Rows N of the cross-batch memory (``xbm_size``; 0: off): the pair terms see B x (B+N) entries."""
        return int(self.options.get("xbm_size") or 0)

    def pair_bytes(self, batch: int, pairs: int = 1, dim: int = 0) -> int:
        """Peak bytes of the pair terms of ``pairs`` pairs computed together: the kind's declared cost
        (:meth:`cvs_tf.losses.PairLoss.cost_for`, against the memory's rows too) plus the instance term's when it is on."""
        n = self.kind.cost_for(self.options).bytes(batch, pairs, dim, self.memory_rows)
        return n + (INSTANCE_COST.bytes(batch, pairs, dim) if self.instance_on else 0)

    def pairs_per_group(self, batch: int | None, dim: int = 0, limit: int | None = None) -> int | None:
        """Pairs computed by one call at batch ``batch``: as many as keep :meth:`pair_bytes` under ``limit``
        (default :data:`GROUP_BYTES`), at least one; None (all) when the batch is unknown."""
        if batch is None:
            return None
        limit = GROUP_BYTES if limit is None else limit
        return max(1, int(limit // max(1, self.pair_bytes(batch, 1, dim))))

    def groups(self, pairs: list, batch: int | None, dim: int = 0, limit: int | None = None) -> list[list]:
        """``pairs`` cut into consecutive groups of :meth:`pairs_per_group`, computed one after the other."""
        size = self.pairs_per_group(batch, dim, limit) or len(pairs)
        return [pairs[i:i + size] for i in range(0, len(pairs), size)]

    def tracker_names(self, pairs: list, reconstruction: bool) -> list[str]:
        names = ["loss", "classification", self.kind.total_name]
        for a, b in pairs:
            names += [f"{pair_key(a, b)}.{t}" for t in self.kind.term_names(a, b).values()]
        if self.instance_on:
            names += ["instance"] + [f"{pair_key(a, b)}.instance" for a, b in pairs]
        if reconstruction:
            names.append("reconstruction")
        return names

    def loss_terms(self, labels: dict, logits: dict, pair_emb: dict, pairs: list, temperature=None,
                   memory: dict | None = None) -> dict:
        """Classification and pair-loss terms from labels, classifier logits and per-pair embeddings.

        ``logits`` maps each classified modality to its (B, C) logits; ``pair_emb`` maps the key
        ``a__b`` of each of ``pairs`` to its (attended) L2-normalised embeddings ``(e_a, e_b)``;
        ``temperature`` (a learnt scalar) replaces ``options["temperature"]`` when given; ``memory`` maps
        each pair's key to its cross-batch :class:`~cvs_tf.losses.registry.Memory` (candidates besides
        the batch; :mod:`cvs_tf.models.xbm`), None for none. The pairs
        are stacked and the kind is called once per group of them (:meth:`groups`, from its declared
        cost), the groups one after the other (:func:`after`), so that one group's terms are in memory
        at a time. With ``instance_weight`` > 0 the instance term of each pair (row i of a and b the
        same item) is computed on the same stacked embeddings. Returns the tracked components and
        ``loss = alpha * classification + beta * mean(total) + instance_weight * mean(instance)`` (without
        reconstruction). A pure function of its arguments, so it can be XLA-compiled.
        """
        lw, kind = self.options, self.kind
        out = {}
        out["classification"] = tf.add_n([classification_loss(labels[m], lg, lw["label_smoothing"])
                                          for m, lg in logits.items()]) / len(logits)
        if temperature is not None:  # the kinds see the learnt temperature in place of the initial value
            lw = {**lw, "temperature": temperature}
        totals, instance = [], []
        first = pair_emb[pair_key(*pairs[0])][0]
        for group in self.groups(pairs, first.shape[0], first.shape[-1] or 0):
            keys = [pair_key(a, b) for a, b in group]
            prev = totals[-1] if totals else None
            ex = after(tf.stack([pair_emb[k][0] for k in keys]), prev)
            ey = after(tf.stack([pair_emb[k][1] for k in keys]), prev)
            mem = None if memory is None else Memory.stack([memory[k] for k in keys])
            terms = kind(tf.stack([labels[a] for a, _ in group]), ex, tf.stack([labels[b] for _, b in group]), ey, lw, mem)
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

    def with_reconstruction(self, out: dict, reconstruction) -> dict:
        """``out`` with the reconstruction term added (tracked, and weighted into ``loss``)."""
        return {**out, "reconstruction": reconstruction,
                "loss": out["loss"] + self.options["reconstruction_weight"] * reconstruction}


class LossMixin:
    """Trackers, ``compute_losses`` and ``train_step``/``test_step`` of :class:`cvs_tf.models.base.CrossModalModel`.

    The model holds its :class:`Objective` as ``objective`` and provides ``loss_inputs`` (the model part:
    labels, logits, pair embeddings) and ``active_pairs``; every loss term comes from the objective.

    ``replica_gather`` (True) all-gathers the replicas' loss inputs before the mining; False leaves
    every replica mining its own rows (what plain data parallelism does: a different loss, kept only
    so that a test can show the difference).
    """

    replica_gather = True

    @property
    def pair_loss(self) -> PairLoss:
        """The registered pair-loss kind of this model."""
        return self.objective.kind

    def _make_trackers(self):
        self._tracker_names = self.objective.tracker_names(self.active_pairs(), bool(self.decoders))
        self._trackers = {n: keras.metrics.Mean(name=n) for n in self._tracker_names}

    @property
    def metrics(self):
        return list(self._trackers.values())

    def compute_losses(self, x: dict, y: dict, training: bool = False) -> dict:
        """Every loss component for one batch; shared by train_step and test_step.

        The model part (branches, classifier, attention blocks) is :meth:`loss_inputs`; the label
        part (cross-entropy and the pair terms) is :meth:`loss_terms`, XLA-compiled on its own when
        the model was compiled with ``jit_compile="loss"`` (see :meth:`compile`); the optional
        reconstruction term is added here. Under ``N`` replicas the per-row inputs of
        :meth:`loss_terms` are all-gathered first (:func:`gather_replicas`; the model part is
        row-wise, so this is the one-device batch), and the reconstruction, a mean over equal-sized
        shards, is the replica's own (its mean over replicas is the global one). In training with a
        cross-batch memory (``self.xbm``, :mod:`cvs_tf.models.xbm`) the pair terms also see the memory as
        it stood before this batch; the (gathered) batch is enqueued after.
        """
        labels, logits, pair_emb, e = self.loss_inputs(x, y, training=training)
        if self.replica_gather:
            labels, logits, pair_emb = gather_replicas((labels, logits, pair_emb))
        fn = self._xla_loss_terms if getattr(self, "_loss_xla", False) else self.loss_terms
        xbm = getattr(self, "xbm", None) if training else None
        out = dict(fn(labels, logits, pair_emb, None if xbm is None else xbm.read(pair_emb)))
        for a, b in self.active_pairs() if xbm is not None else ():  # after the read: a batch is never its own memory
            ea, eb = pair_emb[pair_key(a, b)]
            xbm.enqueue(pair_key(a, b), labels[a], ea, labels[b], eb)
        if self.decoders:
            rec = [reconstruction_loss(tf.cast(x[m], tf.float32), tf.cast(self.decoders[m](e[m]), tf.float32))
                   for m in logits if m in self.decoders]
            out = self.objective.with_reconstruction(out, tf.add_n(rec) / len(rec))
        return out

    def loss_terms(self, labels: dict, logits: dict, pair_emb: dict, memory: dict | None = None) -> dict:
        """:meth:`Objective.loss_terms` of this stage's trained pairs (with the learnt temperature, if any,
        and the pairs' cross-batch ``memory``, if given)."""
        layer = self.temperature_layer
        return self.objective.loss_terms(labels, logits, pair_emb, self.active_pairs(),
                                         None if layer is None else layer.temperature(), memory)

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
