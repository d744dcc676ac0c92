"""Test-time attention protocols: leak-free (query, candidate) score matrices for a trained cross-modal model.

An attention block takes two inputs, and a retrieval query has no ground-truth partner, so
**no label and no ground-truth pairing is used here**: nothing in this module accepts labels.
The protocols (design.md §5, docs/evaluation.md):

``independent``
    cosine of ``model.embed`` (branch output, L2-normalised). O(N_q·N_r·D).
``pairwise``
    every (query, candidate) pair goes through the block linking their modalities; the two
    attended outputs are L2-normalised and compared by cosine. Exact and batched: the per-item
    projections (the block's ``project``: ``g·W_a`` / ``g·W_b``, ``g·W_r`` / ``g·W_s`` for RVS) are
    computed once per item; the block's ``pair_score`` (``(g_q ⊙ g_c)·W_ab``, the ``tanh``, ``W_e``,
    the softmax and the cosine) runs per pair, over chunks of pairs. O(N_q·N_r·D²). Pairs with no block (RVS: two non-reference
    modalities; a model without attention) fall back to ``independent``, and
    :func:`resolve_protocol` says so.
``rerank@K``
    ``independent`` ranking, then the top K candidates of each query are re-scored with
    ``pairwise``; every other candidate keeps its independent score shifted below all re-scored
    ones (cosine - 3 < -1), so the re-ranked top K stays on top in its new order and the rest
    keeps the independent order. O(N_q·N_r·D + N_q·K·D²).

``oracle-pairs`` (pairing test items with a same-class partner) is not offered: it needs test
labels, which this module never receives. The model contract used here is:
``model.modalities``, ``model.branch_output(m, x)``, ``model.embed(m, x)`` and
``model.attention_block(a, b) -> (layer, swapped) | None``, where the layer has
``project(g, side)`` and ``pair_score(p_first, p_second, g_first, g_second)`` (see docs/evaluation.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from cvs_tf.evaluation.metrics import _l2_normalize, top_k_indices

__all__ = [
    "Protocol",
    "parse_protocol",
    "resolve_protocol",
    "score_matrix",
    "ModelScorer",
    "RERANK_OFFSET",
    "LEAK_TITLE",
]

#: Shift applied to candidates outside a re-ranked top K (cosine ∈ [-1, 1], so they end below -1).
RERANK_OFFSET = 3.0
#: What a label-leaking diagnostic table must say in its title (no such protocol is offered).
LEAK_TITLE = "LEAKS LABELS — diagnostic only"

_DEFAULT_BATCH = 4096          # items per branch/embed call
_DEFAULT_PAIR_CHUNK = 4096     # (query, candidate) pairs per attention evaluation


@dataclass(frozen=True)
class Protocol:
    """A parsed protocol: ``name`` is independent | pairwise | rerank; ``k`` is rerank's K."""

    name: str
    k: int | None = None

    def __str__(self) -> str:
        return f"rerank@{self.k}" if self.name == "rerank" else self.name

    @property
    def uses_attention(self) -> bool:
        return self.name != "independent"


def parse_protocol(protocol) -> Protocol:
    """``"independent"``, ``"pairwise"`` or ``"rerank@K"`` (K a positive integer) -> :class:`Protocol`."""
    if isinstance(protocol, Protocol):
        return protocol
    text = str(protocol).strip().lower()
    if text in ("independent", "pairwise"):
        return Protocol(text)
    m = re.fullmatch(r"rerank@(\d+)", text)
    if m and int(m.group(1)) >= 1:
        return Protocol("rerank", int(m.group(1)))
    if text.startswith("oracle"):
        raise ValueError(
            f"protocol {protocol!r} is not offered: it pairs test items by their labels ({LEAK_TITLE}); "
            "use independent, pairwise or rerank@K"
        )
    raise ValueError(f"unknown protocol {protocol!r}: use independent, pairwise or rerank@K (e.g. rerank@50)")


def resolve_protocol(model, q_mod: str, r_mod: str, protocol) -> str:
    """The protocol that really scores the pair (q_mod → r_mod): ``independent`` when no block links them."""
    proto = parse_protocol(protocol)
    if proto.uses_attention and _block(model, q_mod, r_mod) is None:
        return "independent"
    return str(proto)


# --------------------------------------------------------------------------- the block, exactly


def _block(model, q_mod: str, r_mod: str):
    if q_mod == r_mod:
        return None
    found = model.attention_block(q_mod, r_mod)
    return None if found is None else _Block(*found)


class _Block:
    """An attention block seen from the (query, candidate) side, through its ``project`` and ``pair_score``."""

    def __init__(self, layer, swapped: bool):
        self.layer = layer
        self.swapped = bool(swapped)

    def project(self, g, query_side: bool):
        """Per-item term g·W for the side of the pair this modality occupies (None when dropped)."""
        import tensorflow as tf

        p = self.layer.project(tf.convert_to_tensor(g, tf.float32), 0 if query_side != self.swapped else 1)
        return None if p is None else tf.cast(p, tf.float32)

    def cosine(self, pq, pc, gq, gc):
        """Cosine of the attended, L2-normalised outputs; inputs broadcast over leading dims."""
        if self.swapped:
            return self.layer.pair_score(pc, pq, gc, gq)
        return self.layer.pair_score(pq, pc, gq, gc)


def _rows(p, a: int, b: int, axis):
    """Rows a:b of a per-item term, with a new axis at ``axis`` (0: candidates, None: queries)."""
    if p is None:
        return None
    return p[None, a:b, :] if axis == 0 else p[a:b, None, :]


def _pairwise(block: _Block, g_q, g_r, pair_chunk: int) -> np.ndarray:
    """(N_q, N_r) pairwise scores: projections once per item, the pair terms over chunks of pairs."""
    import tensorflow as tf

    g_q = tf.convert_to_tensor(g_q, tf.float32)
    g_r = tf.convert_to_tensor(g_r, tf.float32)
    p_q, p_r = block.project(g_q, True), block.project(g_r, False)
    nq, nr = int(g_q.shape[0]), int(g_r.shape[0])
    bc = max(1, min(nr, pair_chunk))
    bq = max(1, pair_chunk // bc)
    out = np.empty((nq, nr), dtype=np.float64)
    for a in range(0, nq, bq):
        b = min(a + bq, nq)
        gq, pq = g_q[a:b, None, :], _rows(p_q, a, b, None)
        for c in range(0, nr, bc):
            d = min(c + bc, nr)
            out[a:b, c:d] = block.cosine(pq, _rows(p_r, c, d, 0), gq, g_r[None, c:d, :]).numpy()
    return out


def _rerank(block: _Block, e_q, e_r, g_q, g_r, k: int, pair_chunk: int) -> np.ndarray:
    """Independent scores; each query's top k re-scored with the block, the rest shifted below."""
    import tensorflow as tf

    s = _independent(e_q, e_r)
    k = min(k, s.shape[1])
    idx = top_k_indices(s, k)                                   # ties: lower index first
    g_q = tf.convert_to_tensor(g_q, tf.float32)
    g_r = tf.convert_to_tensor(g_r, tf.float32)
    p_q, p_r = block.project(g_q, True), block.project(g_r, False)
    bq = max(1, pair_chunk // k)
    rescored = np.empty(idx.shape, dtype=np.float64)
    for a in range(0, s.shape[0], bq):
        b = min(a + bq, s.shape[0])
        cand = tf.constant(idx[a:b])
        p_c = None if p_r is None else tf.gather(p_r, cand)
        rescored[a:b] = block.cosine(_rows(p_q, a, b, None), p_c,
                                     g_q[a:b, None, :], tf.gather(g_r, cand)).numpy()
    out = s - RERANK_OFFSET
    np.put_along_axis(out, idx, rescored, axis=1)
    return out


def _independent(e_q, e_r) -> np.ndarray:
    """Cosine similarity in float64 (the same normalisation and product as ``map_at_k``)."""
    return _l2_normalize(e_q) @ _l2_normalize(e_r).T


# --------------------------------------------------------------------------- model calls


def _batched(fn, modality: str, x, batch_size: int) -> np.ndarray:
    from cvs_tf.data.pipeline import row_batches  # (TF-free import of this module otherwise)

    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{modality}: features must be a non-empty 2-D array, got shape {x.shape}")
    # a memory-mapped split leaves the resident set block by block
    return np.concatenate([np.asarray(fn(modality, rows), dtype=np.float32) for rows in row_batches(x, batch_size)],
                          axis=0)


def _check_modality(model, modality: str):
    if modality not in list(model.modalities):
        raise ValueError(f"the model has no trained modality {modality!r} (has {', '.join(model.modalities)})")


class ModelScorer:
    """Scores ordered modality pairs of one feature dict under one protocol, caching per-item work.

    ``features`` maps modality -> (N, d) features (no labels). Branch outputs and embeddings are
    computed once per modality; a ``pairwise`` matrix is computed once per unordered pair (the
    reverse direction is its transpose: the same pairs through the same block).
    """

    def __init__(self, model, features: Mapping, protocol="independent", *,
                 batch_size: int = _DEFAULT_BATCH, pair_chunk: int = _DEFAULT_PAIR_CHUNK):
        self.model = model
        self.protocol = parse_protocol(protocol)
        self.features = dict(features)
        for m in self.features:
            _check_modality(model, m)
        self.batch_size = int(batch_size)
        self.pair_chunk = int(pair_chunk)
        self._emb: dict[str, np.ndarray] = {}
        self._g: dict[str, np.ndarray] = {}
        self._pairwise: dict[tuple[str, str], np.ndarray] = {}

    def effective(self, q_mod: str, r_mod: str) -> str:
        return resolve_protocol(self.model, q_mod, r_mod, self.protocol)

    def embeddings(self, modality: str) -> np.ndarray:
        """``model.embed`` of every item of a modality (the independent embedding), float32."""
        if modality not in self._emb:
            self._emb[modality] = _batched(self.model.embed, modality, self.features[modality], self.batch_size)
        return self._emb[modality]

    def branch(self, modality: str) -> np.ndarray:
        """``model.branch_output`` (un-normalised g) of every item of a modality, float32."""
        if modality not in self._g:
            self._g[modality] = _batched(self.model.branch_output, modality, self.features[modality], self.batch_size)
        return self._g[modality]

    def scores(self, q_mod: str, r_mod: str) -> np.ndarray:
        """(N_q, N_r) float64 similarity of every (query, candidate) pair; larger = more similar."""
        if self.effective(q_mod, r_mod) == "independent":
            return _independent(self.embeddings(q_mod), self.embeddings(r_mod))
        block = _block(self.model, q_mod, r_mod)
        if self.protocol.name == "pairwise":
            if (r_mod, q_mod) in self._pairwise:
                return self._pairwise[(r_mod, q_mod)].T
            s = _pairwise(block, self.branch(q_mod), self.branch(r_mod), self.pair_chunk)
            self._pairwise[(q_mod, r_mod)] = s
            return s
        return _rerank(block, self.embeddings(q_mod), self.embeddings(r_mod),
                       self.branch(q_mod), self.branch(r_mod), self.protocol.k, self.pair_chunk)


def score_matrix(model, q_mod: str, q_x, r_mod: str, r_x, protocol="independent", *,
                 batch_size: int = _DEFAULT_BATCH, pair_chunk: int = _DEFAULT_PAIR_CHUNK) -> np.ndarray:
    """(N_q, N_r) float64 similarities of queries ``q_x`` (modality ``q_mod``) to candidates ``r_x``.

    ``protocol`` is ``independent``, ``pairwise`` or ``rerank@K``; a pair with no attention block
    is scored ``independent`` (ask :func:`resolve_protocol` which one applied). Labels are not an
    argument: the scores cannot depend on them. Memory: the (N_q, N_r) result plus
    O(pair_chunk·D) per attention evaluation.
    """
    proto = parse_protocol(protocol)
    _check_modality(model, q_mod)
    _check_modality(model, r_mod)
    if q_mod != r_mod:
        return ModelScorer(model, {q_mod: q_x, r_mod: r_x}, proto, batch_size=batch_size,
                           pair_chunk=pair_chunk).scores(q_mod, r_mod)
    e_q = _batched(model.embed, q_mod, q_x, batch_size)
    e_r = _batched(model.embed, r_mod, r_x, batch_size)
    return _independent(e_q, e_r)
