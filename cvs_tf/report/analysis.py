"""What the report computes from a run's model on the test split: per-class AP, retrieved-class confusion, galleries.

Every item is embedded alone (independent protocol); labels only score the retrieved lists, they are
never used to embed or to rank.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cvs_tf.evaluation.metrics import map_at_k_from_scores
from cvs_tf.evaluation.projector import _ids

CONFUSION_TOP = 10
GALLERY_QUERIES = 2
GALLERY_K = 5


@dataclass
class SplitSpace:
    """The unit embeddings, labels and item ids of one split, per modality."""

    split: str
    emb: dict
    labels: dict
    ids: dict
    classes: list
    paired: bool

    @property
    def modalities(self) -> list[str]:
        return list(self.emb)

    def pairs(self) -> list[tuple[str, str]]:
        return [(q, r) for q in self.emb for r in self.emb if q != r]

    def scores(self, q: str, r: str) -> np.ndarray:
        return self.emb[q] @ self.emb[r].T


def embed_space(model, fs, split: str = "test") -> SplitSpace:
    """Unit embeddings of every modality the model and the set share, on ``split``."""
    mods = [m for m in model.modalities if m in fs.modalities and fs.count(m, split) > 0]
    emb = {m: np.asarray(model.embed(m, fs.x(m, split)), np.float32) for m in mods}
    labels = {m: np.asarray(fs.y(m, split)) for m in mods}
    ids = {m: _ids(fs, m, split, len(labels[m])) for m in mods}
    return SplitSpace(split, emb, labels, ids, fs.classes, fs.paired)


def _primary(y: np.ndarray) -> np.ndarray:
    """One class per item: the label, or the first class of a multi-hot row."""
    return np.argmax(y, axis=1) if y.ndim == 2 else y.astype(int)


def _relevant(yq, yr) -> np.ndarray:
    return (yq.astype(np.float32) @ yr.astype(np.float32).T) > 0 if yq.ndim == 2 else yq[:, None] == yr[None, :]


def per_class_ap(space: SplitSpace, k=50) -> tuple[list[str], dict[str, np.ndarray]]:
    """``(pair labels, {pair: (C,) mean AP@k of the queries of each class})`` (NaN where a class has no query)."""
    out = {}
    n_cls = len(space.classes)
    for q, r in space.pairs():
        _, ap = map_at_k_from_scores(space.scores(q, r), space.labels[q], space.labels[r], k=k, return_per_query=True)
        cls = _primary(space.labels[q])
        out[f"{q}→{r}"] = np.array([ap[cls == c].mean() if (cls == c).any() else np.nan for c in range(n_cls)])
    return list(out), out


def retrieved_class_confusion(space: SplitSpace, top: int = CONFUSION_TOP) -> dict[str, np.ndarray]:
    """``{pair: (C, C)}``: row c = share of each class among the top ``top`` results of class-c queries."""
    out = {}
    n_cls = len(space.classes)
    for q, r in space.pairs():
        s = space.scores(q, r)
        kk = min(top, s.shape[1])
        idx = np.argsort(-s, axis=1, kind="stable")[:, :kk]
        got = _primary(space.labels[r])[idx]
        cls = _primary(space.labels[q])
        mat = np.zeros((n_cls, n_cls))
        for c in range(n_cls):
            if (cls == c).any():
                mat[c] = np.bincount(got[cls == c].ravel(), minlength=n_cls)[:n_cls] / got[cls == c].size
        out[f"{q}→{r}"] = mat
    return out


def _class_name(space: SplitSpace, y) -> str:
    y = np.asarray(y)
    if y.ndim:
        return "|".join(space.classes[c] for c in np.flatnonzero(y)) or "(none)"
    return space.classes[int(y)]


def gallery(space: SplitSpace, *, queries: int = GALLERY_QUERIES, k: int = GALLERY_K, seed: int = 0) -> list[dict]:
    """For a seeded sample of queries per ordered pair, the query and its top ``k`` with right/wrong marks.

    A result is right when it shares the query's class; on an instance-paired set, ``partner`` also
    says whether it is the query's own partner.
    """
    rng = np.random.default_rng(seed)
    out = []
    for q, r in space.pairs():
        rows = np.sort(rng.choice(len(space.labels[q]), size=min(queries, len(space.labels[q])), replace=False))
        s = space.scores(q, r)
        rel = _relevant(space.labels[q][rows], space.labels[r])
        for i, row in enumerate(rows):
            top = np.argsort(-s[row], kind="stable")[:k]
            out.append({
                "pair": (q, r), "query": {"modality": q, "row": int(row), "id": space.ids[q][row],
                                          "class": _class_name(space, space.labels[q][row])},
                "results": [{"modality": r, "row": int(j), "id": space.ids[r][j], "score": float(s[row, j]),
                             "class": _class_name(space, space.labels[r][j]), "right": bool(rel[i, j]),
                             "partner": bool(space.paired and j == row)} for j in top]})
    return out
