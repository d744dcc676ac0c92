"""LossMixin: the tracked loss terms, their computation and the train/test steps shared by every space."""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from cvs_tf.config import LossConfig
from cvs_tf.losses import PairLoss, classification_loss, get_pair_loss, reconstruction_loss


def pair_key(a: str, b: str) -> str:
    """Name of the block / metric for the ordered pair (a, b)."""
    return f"{a}__{b}"


class LossMixin:
    """Loss part of :class:`cvs_tf.models.base.CrossModalModel`: trackers, ``compute_losses``, ``train_step``/``test_step``.

    The pair loss is the registered kind ``loss_weights["kind"]`` (:mod:`cvs_tf.losses.registry`); the
    tracked names are ``loss``, ``classification``, the kind's total name (``triplet`` for the default),
    ``{a}__{b}.{term}`` for each active pair and term of the kind, and ``reconstruction`` when on.
    """

    @staticmethod
    def loss_options(overrides: dict | None = None) -> dict:
        """The :class:`~cvs_tf.config.LossConfig` defaults (their one home) updated with ``overrides``."""
        return {**dataclasses.asdict(LossConfig()), **(overrides or {})}

    @property
    def pair_loss(self) -> PairLoss:
        """The registered pair-loss kind of this model (``ValueError`` naming the known kinds if unregistered)."""
        return get_pair_loss(self.loss_weights["kind"])

    def _make_trackers(self):
        kind = self.pair_loss
        names = ["loss", "classification", kind.total_name]
        for a, b in self.active_pairs():
            names += [f"{pair_key(a, b)}.{t}" for t in kind.term_names(a, b).values()]
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
        """
        labels, logits, pair_emb, e = self.loss_inputs(x, y, training=training)
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
        pairs are stacked and the pair-loss kind is called once on them (one batched op per term:
        the per-pair form traced ~1000 ops per pair). Returns the tracked components and
        ``loss = alpha * classification + beta * mean(total)`` (without reconstruction). A pure
        function of its arguments, so it can be XLA-compiled.
        """
        lw, kind = self.loss_weights, self.pair_loss
        out = {}
        smooth = lw["label_smoothing"]
        out["classification"] = tf.add_n([classification_loss(labels[m], lg, smooth) for m, lg in logits.items()]) / len(logits)
        if lw["learn_temperature"]:  # the kinds see the learnt temperature in place of the initial value
            lw = {**lw, "temperature": self.temperature_layer.temperature()}
        pairs = self.active_pairs()
        keys = [pair_key(a, b) for a, b in pairs]
        terms = kind(tf.stack([labels[a] for a, _ in pairs]), tf.stack([pair_emb[k][0] for k in keys]),
                     tf.stack([labels[b] for _, b in pairs]), tf.stack([pair_emb[k][1] for k in keys]), lw)
        for i, (a, b) in enumerate(pairs):
            for term, name in kind.term_names(a, b).items():
                out[f"{pair_key(a, b)}.{name}"] = terms[term][i]
        out[kind.total_name] = tf.reduce_mean(terms["total"])
        out["loss"] = lw["alpha"] * out["classification"] + lw["beta"] * out[kind.total_name]
        return out

    def _update(self, losses):
        for n, t in self._trackers.items():
            t.update_state(losses[n])
        return {n: t.result() for n, t in self._trackers.items()}

    def _unpack(self, data):
        """Batches are (features, labels) dicts, or index dicts gathered from an attached FeatureBank."""
        if isinstance(data, tuple) and len(data) == 2:
            return data
        return self.bank.gather(data)

    def attach_bank(self, bank):
        """Attach the device-resident FeatureBank used to gather index batches."""
        object.__setattr__(self, "_bank", bank)

    @property
    def bank(self):
        bank = getattr(self, "_bank", None)
        if bank is None:
            raise RuntimeError("index batches need a FeatureBank: call model.attach_bank(bank) first")
        return bank

    def train_step(self, data):
        x, y = self._unpack(data)
        with tf.GradientTape() as tape:
            losses = self.compute_losses(x, y, training=True)
            scaled = losses["loss"]
            if hasattr(self.optimizer, "scale_loss"):
                scaled = self.optimizer.scale_loss(scaled)
        variables = self.trainable_variables
        grads = tape.gradient(scaled, variables)
        # None gradients (parts unused by this stage's losses) are skipped by the optimizer, which is
        # still built over every trainable variable, so its state layout is stable for --resume.
        self.optimizer.apply_gradients(zip(grads, variables))
        return self._update(losses)

    def test_step(self, data):
        x, y = self._unpack(data)
        return self._update(self.compute_losses(x, y, training=False))
