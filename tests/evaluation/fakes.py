"""A tiny stand-in model with the evaluation contract, wrapping real cvs_tf attention layers (for the evaluation tests)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from cvs_tf.layers import AlignedAttention, RVSAttention, RVSReference


class FakeModel:
    """Linear branches + real attention blocks; records every input the evaluation code gives it.

    ``blocks`` maps (first_modality, second_modality) -> built layer; ``attention_block`` returns
    ``(layer, swapped)`` exactly like the real models.
    """

    def __init__(self, dims: dict, blocks: dict, dim: int = 8, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.modalities = list(dims)
        self.dim = dim
        self.w = {m: (rng.normal(size=(d, dim)) / np.sqrt(d)).astype(np.float32) for m, d in dims.items()}
        self.blocks = dict(blocks)
        self.seen: list[tuple[str, str, bytes]] = []

    def branch_output(self, modality, features):
        x = np.asarray(features, dtype=np.float32)
        self.seen.append(("branch", modality, x.tobytes()))
        return tf.constant(x @ self.w[modality])

    def embed(self, modality, features):
        return tf.math.l2_normalize(self.branch_output(modality, features), axis=-1)

    def attention_block(self, a, b):
        if (a, b) in self.blocks:
            return self.blocks[(a, b)], False
        if (b, a) in self.blocks:
            return self.blocks[(b, a)], True
        return None


def _sharpen(layer, seed: int, scale: float = 3.0):
    """Random kernels large enough that α is far from uniform (a weak test otherwise)."""
    rng = np.random.default_rng(seed)
    for v in layer.trainable_weights:
        v.assign((scale * rng.normal(size=v.shape) / np.sqrt(v.shape[0])).astype(np.float32))
    return layer


def aligned_block(dim: int = 8, seed: int = 0, **switches) -> AlignedAttention:
    layer = AlignedAttention(**switches)
    layer.build([(None, dim), (None, dim)])
    return _sharpen(layer, seed)


def rvs_blocks(others, dim: int = 8, seed: int = 0) -> list[RVSAttention]:
    ref = RVSReference()
    out = []
    for _ in others:
        layer = RVSAttention(reference=ref)
        layer.build([(None, dim), (None, dim)])
        out.append(layer)
    _sharpen(ref, seed + 100)
    for i, layer in enumerate(out):
        rng = np.random.default_rng(seed + i)
        for v in (layer.w_s, layer.w_rs, layer.w_se):
            v.assign((3.0 * rng.normal(size=v.shape) / np.sqrt(dim)).astype(np.float32))
    return out


def cvs_fake(dims: dict, dim: int = 8, seed: int = 0, **switches) -> FakeModel:
    """One AlignedAttention per modality pair (a CVS)."""
    mods = list(dims)
    blocks = {}
    for i, a in enumerate(mods):
        for b in mods[i + 1:]:
            blocks[(a, b)] = aligned_block(dim, seed + len(blocks), **switches)
    return FakeModel(dims, blocks, dim, seed)


def rvs_fake(dims: dict, reference: str, dim: int = 8, seed: int = 0) -> FakeModel:
    """One RVSAttention from the reference to every other modality (an RVS)."""
    others = [m for m in dims if m != reference]
    layers = rvs_blocks(others, dim, seed)
    return FakeModel(dims, {(reference, m): layer for m, layer in zip(others, layers)}, dim, seed)


def one_pair_at_a_time(model, q_mod, q_x, r_mod, r_x):
    """The definition: push each (query, candidate) pair through the layer, L2, cosine."""
    layer, swapped = model.attention_block(q_mod, r_mod)
    g_q = np.asarray(model.branch_output(q_mod, q_x))
    g_r = np.asarray(model.branch_output(r_mod, r_x))
    out = np.empty((len(q_x), len(r_x)))
    for i in range(len(q_x)):
        for j in range(len(r_x)):
            a, b = g_q[i:i + 1], g_r[j:j + 1]
            if swapped:
                oc, oq = layer((tf.constant(b), tf.constant(a)))
            else:
                oq, oc = layer((tf.constant(a), tf.constant(b)))
            oq, oc = np.asarray(oq)[0].astype(np.float64), np.asarray(oc)[0].astype(np.float64)
            out[i, j] = oq @ oc / (np.linalg.norm(oq) * np.linalg.norm(oc))
    return out
