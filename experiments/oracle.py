"""The ``oracle-pairs`` diagnostic (experiments only, never in ``cvs_tf.evaluate``): test items attended with a same-class partner drawn with the test labels — it LEAKS LABELS.

For every ordered pair (a → b) that an attention block links, each test item of modality a goes
through the block together with a partner of modality b drawn at random among the test items of
b **with the same label**, and each test item of b together with a same-class partner of
modality a; the query's attended a-side output is ranked by cosine against the candidates'
attended b-side outputs. That is what feeding class-aligned test pairs through the training
graph computes: the block's α is chosen by the answer. Pairs without a block (and items whose
class has no item in the other modality) are scored on the plain embedding, like ``pairwise``'s
fallback. The tables' titles say "LEAKS LABELS — diagnostic only" (``LEAK_TITLE``); the numbers
measure how far a test-time pairing leak inflates an attention space, nothing else.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cvs_tf.evaluation.protocols import LEAK_TITLE

ORACLE = "oracle-pairs"
_CHUNK = 4096  # items per block call

__all__ = ["LEAK_TITLE", "ORACLE", "is_oracle", "oracle_table", "partners", "protocol_label", "with_leak_title"]


def is_oracle(protocol) -> bool:
    """Whether ``protocol`` names the label-leaking diagnostic."""
    return str(protocol).strip().lower() == ORACLE


def protocol_label(protocol, inside: bool = False) -> str:
    """How a protocol is named in headings: the diagnostic carries ``LEAK_TITLE`` (``inside``: for a heading
    that already puts the protocol in parentheses)."""
    if not is_oracle(protocol):
        return str(protocol)
    return f"{ORACLE}: {LEAK_TITLE}" if inside else f"{ORACLE} ({LEAK_TITLE})"


def with_leak_title(df: pd.DataFrame) -> pd.DataFrame:
    """The table with its title naming the leak (``metric — oracle-pairs protocol (LEAKS LABELS …), split (data)``)."""
    a = df.attrs
    df.attrs["title"] = f"{a['metric']} — {protocol_label(ORACLE)} protocol, {a['split']} split ({a['data_label']})"
    return df


def partners(y_from: np.ndarray, y_to: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each item labelled ``y_from[i]``, the index of a random item of ``y_to`` with that label (-1: none)."""
    y_from, y_to = np.asarray(y_from), np.asarray(y_to)
    out = np.full(len(y_from), -1, dtype=np.int64)
    for c in np.unique(y_from):
        pool = np.flatnonzero(y_to == c)
        rows = np.flatnonzero(y_from == c)
        if len(pool):
            out[rows] = rng.choice(pool, size=len(rows))
    return out


def _attend(layer, own_first: bool, g_own: np.ndarray, g_partner: np.ndarray) -> np.ndarray:
    """The block's output on the own side for (own, partner) rows; ``own_first``: own is the layer's first input."""
    import tensorflow as tf

    out = []
    for s in range(0, len(g_own), _CHUNK):
        own = tf.constant(g_own[s:s + _CHUNK], tf.float32)
        other = tf.constant(g_partner[s:s + _CHUNK], tf.float32)
        res = layer([own, other] if own_first else [other, own])
        out.append(np.asarray(res[0 if own_first else 1], dtype=np.float64))
    return np.concatenate(out)


def _paired_side(layer, own_first: bool, g_own: np.ndarray, g_other: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Own items attended with their partners ``g_other[idx]``; items without one (-1) keep ``g_own``."""
    out = np.asarray(g_own, dtype=np.float64).copy()
    has = idx >= 0
    if has.any():
        out[has] = _attend(layer, own_first, g_own[has], g_other[idx[has]])
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def oracle_scores(model, a: str, b: str, g: dict, y: dict, rng: np.random.Generator) -> tuple[np.ndarray, int] | None:
    """(N_a, N_b) cosine scores of a's queries against b's candidates, each attended with a same-class
    partner, and the number of items left without one; None when no block links a and b."""
    found = model.attention_block(a, b)
    if found is None:
        return None
    layer, swapped = found  # swapped: the layer's first input is b
    to_b, to_a = partners(y[a], y[b], rng), partners(y[b], y[a], rng)
    qa = _paired_side(layer, not swapped, g[a], g[b], to_b)
    cb = _paired_side(layer, bool(swapped), g[b], g[a], to_a)
    return _unit(qa) @ _unit(cb).T, int((to_b < 0).sum() + (to_a < 0).sum())


def oracle_table(model, fs, *, k: int = 50, modalities=None, seed: int = 0, split: str = "test") -> pd.DataFrame:
    """The mAP@k table of ``model`` on ``split`` of ``fs`` under ``oracle-pairs`` (title: LEAKS LABELS).

    Partners are drawn with ``np.random.default_rng((seed, i, j))`` per unordered pair (i, j) of
    ``modalities``; ``attrs["unpaired"]`` counts the items that found no same-class partner."""
    from cvs_tf.evaluation.metrics import map_at_k, map_at_k_from_scores
    from cvs_tf.evaluation.table import table_from_matrix

    if fs.label_kind != "single":
        raise ValueError(f"{fs.name}: {ORACLE} draws same-class partners and needs single-label data")
    mods = list(modalities or fs.modalities)
    y = {m: np.asarray(fs.y(m, split)) for m in mods}
    g = {m: np.asarray(model.branch_output(m, fs.x(m, split)), dtype=np.float64) for m in mods}
    values, fallback, unpaired = np.full((len(mods), len(mods)), np.nan), [], 0
    for i, a in enumerate(mods):
        for j in range(i + 1, len(mods)):
            b = mods[j]
            found = oracle_scores(model, a, b, g, y, np.random.default_rng((seed, i, j)))
            if found is None:
                values[i, j] = map_at_k(g[a], g[b], y[a], y[b], k)
                values[j, i] = map_at_k(g[b], g[a], y[b], y[a], k)
                fallback += [[a, b], [b, a]]
                continue
            scores, missing = found
            values[i, j] = map_at_k_from_scores(scores, y[a], y[b], k)
            values[j, i] = map_at_k_from_scores(scores.T, y[b], y[a], k)
            unpaired += missing
    df = table_from_matrix(values, mods, proto=ORACLE, split=split, k=k, data_label=fs.data_label,
                           fallback=sorted(fallback))
    df.attrs["unpaired"] = unpaired
    return with_leak_title(df)
