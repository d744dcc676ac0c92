"""LossMixin: the tracked loss terms, their computation and the train/test steps shared by every space."""

from __future__ import annotations

import keras
import tensorflow as tf

from cvs_tf.losses import classification_loss, reconstruction_loss
from cvs_tf.losses.triplet import batched_cross_triplet_loss, batched_semi_hard_triplet_loss


def pair_key(a: str, b: str) -> str:
    """Name of the block / metric for the ordered pair (a, b)."""
    return f"{a}__{b}"


class LossMixin:
    """Loss part of :class:`cvs_tf.models.base.CrossModalModel`: trackers, ``compute_losses``, ``train_step``/``test_step``."""
    def _make_trackers(self):
        names = ["loss", "classification", "triplet"]
        for a, b in self.active_pairs():
            k = pair_key(a, b)
            names += [f"{k}.intra_{a}", f"{k}.intra_{b}", f"{k}.inter"]
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
        """Classification and triplet terms from labels, classifier logits and per-pair embeddings.

        ``logits`` maps each classified modality to its (B, C) logits; ``pair_emb`` maps each
        active pair key ``a__b`` to its (attended) L2-normalised embeddings ``(e_a, e_b)``.
        Returns the tracked components and ``loss = alpha * classification + beta * triplet``
        (without reconstruction). A pure function of its arguments, so it can be XLA-compiled.
        """
        lw = self.loss_weights
        out = {}
        out["classification"] = tf.add_n([classification_loss(labels[m], lg) for m, lg in logits.items()]) / len(logits)
        # eq. 3.1.6 for every active pair, with the pairs stacked so that each kind of term is one
        # batched op (the per-pair form traced ~1000 ops per pair; the values are identical).
        pairs = self.active_pairs()
        keys = [pair_key(a, b) for a, b in pairs]
        (g1, g2, g3), (m1, m2, m3) = lw["gammas"], lw["margins"]
        ex = tf.stack([pair_emb[k][0] for k in keys])
        ey = tf.stack([pair_emb[k][1] for k in keys])
        yx = tf.stack([labels[a] for a, _ in pairs])
        yy = tf.stack([labels[b] for _, b in pairs])
        n = len(pairs)
        intra = batched_semi_hard_triplet_loss(tf.concat([yx, yy], 0), tf.concat([ex, ey], 0),
                                               tf.constant([m1] * n + [m2] * n))
        inter = batched_cross_triplet_loss(yx, ex, yy, ey, m3)
        if lw["symmetric_inter"]:
            inter = 0.5 * (inter + batched_cross_triplet_loss(yy, ey, yx, ex, m3))
        for i, ((a, b), k) in enumerate(zip(pairs, keys)):
            out[f"{k}.intra_{a}"] = intra[i]
            out[f"{k}.intra_{b}"] = intra[n + i]
            out[f"{k}.inter"] = inter[i]
        totals = g1 * intra[:n] + g2 * intra[n:] + g3 * inter
        out["triplet"] = tf.reduce_mean(totals)
        out["loss"] = lw["alpha"] * out["classification"] + lw["beta"] * out["triplet"]
        return out

    def _update(self, losses):
        for n, t in self._trackers.items():
            t.update_state(losses[n])
        return {n: t.result() for n, t in self._trackers.items()}

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
