"""Cross-modal search: embed a query with an export, then look it up in one or more gallery indexes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cvs_tf.evaluation.calibration import (
    CalibrationError,
    check_min_precision,
    pair_record,
    precision_at,
    threshold_for,
)
from cvs_tf.retrieval.index import Index, RetrievalError


@dataclass
class Hit:
    """One retrieved item."""

    rank: int
    row: int
    id: str
    score: float
    modality: str | None
    label: int | list[int] | None
    class_name: str | None
    #: the validation precision this score corresponds to (None without a calibration of the pair)
    precision: float | None = None

    def to_dict(self) -> dict:
        return {"rank": self.rank, "id": self.id, "row": self.row, "score": self.score,
                "modality": self.modality, "label": self.label, "class": self.class_name,
                "precision": self.precision}


@dataclass
class SearchResult:
    """The top k of one index for every query: ``scores`` and ``rows`` are (Q, k)."""

    index: Index
    name: str
    scores: np.ndarray
    rows: np.ndarray
    #: the export's calibration of (query modality -> this index's modality), and the --min-precision threshold
    calibration: dict | None = None
    threshold: float | None = None

    @property
    def modality(self) -> str | None:
        return self.index.modality

    @property
    def num_queries(self) -> int:
        return int(self.rows.shape[0])

    def hits(self, query: int = 0) -> list[Hit]:
        """The ranked hits of one query (items an approximate index did not reach are left out)."""
        out = []
        for r, (row, score) in enumerate(zip(self.rows[query], self.scores[query])):
            row = int(row)
            if row < 0:
                continue
            label = None
            if self.index.labels is not None:
                y = self.index.labels[row]
                label = np.flatnonzero(y).tolist() if np.ndim(y) else int(y)
            precision = None if self.calibration is None else precision_at(self.calibration["curve"], float(score))
            out.append(Hit(rank=r + 1, row=row, id=str(self.index.ids[row]), score=float(score),
                           modality=self.modality, label=label, class_name=self.index.class_name(row),
                           precision=precision))
        return out

    def to_dict(self) -> dict:
        return {"index": self.name, "modality": self.modality, "kind": self.index.kind,
                "count": self.index.count, "params": self.index.params, "min_precision_threshold": self.threshold,
                "queries": [[h.to_dict() for h in self.hits(q)] for q in range(self.num_queries)]}


class Searcher:
    """Queries of any exported modality against gallery indexes built with the same export.

    ``Searcher(export, indexes).search(modality, x, k)`` embeds raw ``modality`` features ``x``
    ((d_m,) or (N, d_m)) with the export and returns one :class:`SearchResult` per index.
    ``export`` is an :class:`~cvs_tf.serving.Export` or its directory; ``indexes`` are
    :class:`Index` objects or index directories. An index built with another export (or D) is
    refused with :class:`RetrievalError`.
    """

    def __init__(self, export, indexes):
        from cvs_tf.serving.export import Export

        self.export = export if isinstance(export, Export) else Export(export)
        if isinstance(indexes, Index | str | os.PathLike):
            indexes = [indexes]
        self.indexes = [ix if isinstance(ix, Index) else Index.load(ix) for ix in indexes]
        if not self.indexes:
            raise RetrievalError("no index to search")
        for ix in self.indexes:
            ix.check_export(self.export)

    def embed(self, modality: str, x) -> np.ndarray:
        """Embeddings (N, D) of raw query features, through the export."""
        return self.export.embed(modality, x)

    def calibration(self, modality: str, index: Index, required: bool = False) -> dict | None:
        """The export's score calibration of ``modality`` queries against ``index`` (None when it has none)."""
        where = str(self.export.path / "export.json")
        try:
            return pair_record(self.export.manifest.get("calibration"), modality, str(index.modality), where=where)
        except CalibrationError as exc:
            if required:
                raise RetrievalError(f"{exc}; --min-precision needs it") from None
            return None

    def search(self, modality: str, x, k: int = 10, *, nprobe: int | None = None,
               ef_search: int | None = None, embedded: bool = False,
               min_precision: float | None = None) -> list[SearchResult]:
        """The top ``k`` of every index for each query row (``nprobe``/``ef_search`` apply where they fit).

        ``embedded``: ``x`` already holds query embeddings (N, D). ``min_precision`` P in (0, 1): keep
        only results whose score reaches the export's calibrated threshold for precision P on the
        validation split (fewer than ``k``, or none, may remain); every hit carries the precision its
        score corresponds to where the export is calibrated.
        """
        if min_precision is not None:
            try:
                min_precision = check_min_precision(min_precision)
            except ValueError as exc:
                raise RetrievalError(str(exc)) from None
        q = np.asarray(x, np.float32) if embedded else self.embed(modality, x)
        out = []
        for ix in self.indexes:
            cal = self.calibration(modality, ix, required=min_precision is not None)
            scores, rows = ix.search(q, k, nprobe=nprobe if ix.kind == "ivf" else None,
                                     ef_search=ef_search if ix.kind == "hnsw" else None)
            threshold = None
            if min_precision is not None:
                threshold = threshold_for(cal["curve"], min_precision)
                keep = scores >= threshold if threshold is not None else np.zeros(scores.shape, bool)
                rows = np.where(keep, rows, -1)
            name = str(ix.path) if ix.path is not None else f"{ix.kind}:{ix.modality}"
            out.append(SearchResult(index=ix, name=name, scores=scores, rows=rows, calibration=cal,
                                    threshold=threshold))
        return out


def export_dir_of(index: Index) -> Path | None:
    """Where the export recorded by an index lives (its path relative to the index directory), if known."""
    rel = (index.export or {}).get("path_from_index")
    if rel is None or index.path is None:
        return None
    return (index.path / rel).resolve()
