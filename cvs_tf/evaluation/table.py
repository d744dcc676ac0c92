"""The cross-modal mAP table (thesis Tables 7–11) and the instance-level recall table; writers.

Layout of the returned ``pandas.DataFrame`` (index name ``query``, columns name ``retrieval``)::

    retrieval   image   text  audio   mean      <- "mean": mean of the row's n-1 cells
    query
    image          —   0.91   0.70   0.805
    text        0.93      —   0.66   0.795
    audio       0.52   0.31      —   0.415
    mean        0.725  0.61   0.68   0.672      <- column means; bottom-right = overall mean

The diagonal is empty (NaN, printed "—"). The overall mean is the mean of the n(n−1) ordered
pairs (equal to the mean of the row means). ``df.attrs`` carries ``title``, ``metric``,
``protocol``, ``split``, ``k`` (int or ``"all"``), ``data_label``, ``fallback_cells`` (pairs
scored ``independent`` because no attention block links them), ``overall_mean``, ``n_pairs``.

For instance-paired sets :func:`cross_modal_recall` gives recall@1/5/10 and the median rank of
each query's own partner for every ordered pair, as ``{query: {retrieval: {"1": r1, "5": r5,
"10": r10, "median_rank": m}}}`` (the ``"recall"`` record of ``metrics.json``);
:func:`format_recall` and :func:`recall_markdown` print it one pair per row.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from cvs_tf.data.store import order_modalities
from cvs_tf.evaluation.metrics import (
    RECALL_KS,
    map_at_k,
    map_at_k_from_scores,
    normalize_k,
    recall_at_k,
    recall_at_k_from_scores,
)
from cvs_tf.evaluation.protocols import ModelScorer, parse_protocol
from cvs_tf.utils.atomic import atomic_file

__all__ = ["cross_modal_table", "format_table", "to_markdown", "write_table", "read_table", "table_from_matrix",
           "table_record", "cross_modal_recall", "recall_rows", "format_recall", "recall_markdown", "MEAN",
           "TABLE_FORMAT"]

MEAN = "mean"
TABLE_FORMAT = "cvs_tf.map_table"
_DASH = "—"


def _k_label(k) -> str | int:
    return "all" if k is None else int(k)


def _title(metric: str, protocol: str, split: str, data_label: str) -> str:
    return f"{metric} — {protocol} protocol, {split} split ({data_label})"


def _check_present(mods, label_of, split: str):
    for m in mods:
        n = label_of(m)
        if n == 0:
            raise ValueError(
                f"modality {m!r} has no items in the {split} split: cannot evaluate retrieval from or to it "
                f"(drop it with modalities=[...])"
            )


def cross_modal_table(
    model_or_embeddings,
    split: str = "test",
    k=50,
    *,
    protocol="independent",
    dataset=None,
    modalities=None,
    data_label: str | None = None,
    chunk_size: int | None = None,
) -> pd.DataFrame:
    """mAP@K for every ordered pair of distinct modalities, in the layout of thesis Tables 7–11.

    Args:
      model_or_embeddings: either ``{modality: (embeddings, labels)}`` (already embedded items;
        only the ``independent`` protocol applies), or a trained model (see
        ``cvs_tf.evaluation.protocols``) together with ``dataset``.
      split: which split of ``dataset`` to evaluate (``test`` or ``val``); recorded in the table.
      k: the cut-off K, or ``None`` / ``"all"`` for mAP@all.
      protocol: ``independent``, ``pairwise`` or ``rerank@K`` (model only).
      dataset: a ``FeatureSet`` (model input): features and labels of ``split``; its
        ``data_label`` ("synthetic stand-in" / "real features") goes into the table.
      modalities: the modalities (rows and columns), default all available in canonical order.
      data_label: overrides the data label (default: the dataset's, else "unlabelled data").

    Raises:
      ValueError: fewer than two modalities, a modality missing or without items in the split,
        a protocol that needs a model given plain embeddings, or bad metric inputs.
    """
    proto = parse_protocol(protocol)
    k = normalize_k(k)                       # validated; "all" -> None
    mods, label, cell = _cells_for(
        model_or_embeddings, proto, split, modalities=modalities, dataset=dataset, data_label=data_label,
        from_embeddings=lambda eq, er, yq, yr: map_at_k(eq, er, yq, yr, k, chunk_size=chunk_size),
        from_scores=lambda s, yq, yr: map_at_k_from_scores(s, yq, yr, k, chunk_size=chunk_size))

    values = np.full((len(mods), len(mods)), np.nan)
    fallback = []
    for i, q in enumerate(mods):
        for j, r in enumerate(mods):
            if i != j:
                values[i, j], used = cell(q, r)
                if used != str(proto):
                    fallback.append([q, r])
    return _assemble(values, mods, proto=str(proto), split=split, k=k, data_label=label, fallback=fallback)


def _cells_for(model_or_embeddings, proto, split: str, **kw):
    """(modalities, data label, cell) of a model or of precomputed embeddings; ``cell(q, r)`` is
    (value, protocol used), the value computed by ``from_embeddings(eq, er, yq, yr)`` or
    ``from_scores(scores, yq, yr)``."""
    if isinstance(model_or_embeddings, Mapping):
        mods, label, cell = _embedding_cells(model_or_embeddings, proto, split, **kw)
    else:
        mods, label, cell = _model_cells(model_or_embeddings, proto, split, **kw)
    if len(mods) < 2:
        raise ValueError(f"a cross-modal table needs at least two modalities, got {mods}")
    if len(set(mods)) != len(mods):
        raise ValueError(f"modalities listed twice: {mods}")
    return mods, label, cell


def _embedding_cells(embeddings: Mapping, proto, split: str, *, modalities, dataset, data_label, from_embeddings,
                     from_scores):
    """(modalities, data label, cell) for precomputed ``{modality: (embeddings, labels)}``."""
    data = dict(embeddings)
    mods = list(modalities) if modalities is not None else order_modalities(data)
    for m in mods:
        if m not in data:
            raise ValueError(f"no embeddings for modality {m!r} (have {', '.join(data)})")
        if not (isinstance(data[m], tuple | list) and len(data[m]) == 2):
            raise ValueError(f"embeddings[{m!r}] must be a pair (embeddings, labels)")
    if proto.uses_attention:
        raise ValueError(
            f"protocol {proto} needs the model (its attention blocks); precomputed embeddings "
            "support only the independent protocol"
        )
    _check_present(mods, lambda m: len(data[m][0]), split)
    label = data_label or (dataset.data_label if dataset is not None else "unlabelled data")

    def cell(q, r):
        (eq, yq), (er, yr) = data[q], data[r]
        return from_embeddings(eq, er, yq, yr), "independent"

    return mods, label, cell


def _model_cells(model, proto, split: str, *, modalities, dataset, data_label, from_embeddings, from_scores):
    """(modalities, data label, cell) for a trained model scored on ``split`` of ``dataset``; the
    protocol used falls back to independent for a pair without a linking block."""
    if dataset is None:
        raise ValueError("a model needs dataset= (a FeatureSet with the items to evaluate)")
    trained = list(model.modalities)
    mods = (list(modalities) if modalities is not None
            else [m for m in order_modalities(dataset.modalities) if m in trained])
    for m in mods:
        if m not in dataset.modalities:
            raise ValueError(f"dataset {dataset.name!r} has no modality {m!r}")
        if m not in trained:
            raise ValueError(f"the model has not trained modality {m!r} (has {', '.join(trained)})")
    _check_present(mods, lambda m: dataset.count(m, split), split)
    scorer = ModelScorer(model, {m: dataset.x(m, split) for m in mods}, proto)

    def cell(q, r):
        yq, yr = dataset.y(q, split), dataset.y(r, split)
        used = scorer.effective(q, r)
        if used == "independent":        # bounded memory: never builds the full score matrix
            value = from_embeddings(scorer.embeddings(q), scorer.embeddings(r), yq, yr)
        else:
            value = from_scores(scorer.scores(q, r), yq, yr)
        return value, used

    return mods, data_label or dataset.data_label, cell


def cross_modal_recall(model_or_embeddings, split: str = "test", ks=RECALL_KS, *, protocol="independent",
                       dataset=None, modalities=None, chunk_size: int | None = None) -> dict:
    """Instance-level retrieval of every ordered pair of distinct modalities of an instance-paired split:
    ``{query: {retrieval: {"1": r1, "5": r5, "10": r10, "median_rank": m}}}``
    (:func:`cvs_tf.evaluation.metrics.recall_at_k`; row i of every modality is the same item).

    Same inputs as :func:`cross_modal_table`. Labels are never used. Raises ValueError for a
    class-paired ``dataset`` (no item has a partner) or modalities of different sizes.
    """
    if dataset is not None and not dataset.paired:
        raise ValueError(f"dataset {dataset.name!r} is class-paired: recall@K needs instance-paired items")
    proto = parse_protocol(protocol)
    mods, _, cell = _cells_for(
        model_or_embeddings, proto, split, modalities=modalities, dataset=dataset, data_label=None,
        from_embeddings=lambda eq, er, _yq, _yr: recall_at_k(eq, er, ks, chunk_size=chunk_size),
        from_scores=lambda s, _yq, _yr: recall_at_k_from_scores(s, ks, chunk_size=chunk_size))
    return {q: {r: cell(q, r)[0] for r in mods if r != q} for q in mods}


def recall_rows(record: Mapping) -> tuple[list[str], list[list]]:
    """(header, rows) of a recall record: one row per ordered pair ``q→r`` with R@K for each K
    and the median rank, then a ``mean`` row (means over the pairs)."""
    pairs = [(q, r, rec) for q, per in record.items() for r, rec in per.items()]
    ks = [key for key in pairs[0][2] if key != "median_rank"] if pairs else [str(k) for k in RECALL_KS]
    keys = ks + ["median_rank"]
    header = ["pair"] + [f"R@{k}" for k in ks] + ["median rank"]
    rows = [[f"{q}→{r}"] + [rec[key] for key in keys] for q, r, rec in pairs]
    if pairs:
        rows.append([MEAN] + [float(np.mean([rec[key] for _, _, rec in pairs])) for key in keys])
    return header, rows


def _recall_text_rows(record: Mapping, digits: int) -> tuple[list[str], list[list[str]]]:
    header, rows = recall_rows(record)
    fmt = lambda v, i: f"{v:.1f}" if i == len(header) - 1 else f"{v:.{digits}f}"  # noqa: E731
    return header, [[r[0]] + [fmt(v, i) for i, v in enumerate(r[1:], 1)] for r in rows]


def format_recall(record: Mapping, title: str = "", digits: int = 3) -> str:
    """A recall record as aligned plain text: one ordered pair per row."""
    header, rows = _recall_text_rows(record, digits)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join(([title] if title else []) + [line(header), "  ".join("-" * w for w in widths)]
                     + [line(r) for r in rows])


def recall_markdown(record: Mapping, title: str = "", digits: int = 3) -> str:
    """A recall record as a Markdown table (with a ``###`` heading when ``title`` is given)."""
    header, rows = _recall_text_rows(record, digits)
    lines = ([f"### {title}", ""] if title else []) + [
        "| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join([f"**{r[0]}**" if r[0] == MEAN else r[0]] + r[1:]) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def table_from_matrix(values, mods, *, proto="independent", split="test", k=50, data_label="", fallback=()) -> pd.DataFrame:
    """A table (same layout and attrs as :func:`cross_modal_table`) from an (n, n) matrix of pair
    scores computed elsewhere (e.g. a baseline); the diagonal is ignored."""
    return _assemble(np.asarray(values, dtype=float), list(mods), proto=proto, split=split, k=k,
                     data_label=data_label, fallback=list(fallback))


def _assemble(values, mods, *, proto, split, k, data_label, fallback) -> pd.DataFrame:
    n = len(mods)
    off = ~np.eye(n, dtype=bool)
    row_means = np.array([values[i, off[i]].mean() for i in range(n)])
    col_means = np.array([values[off[:, j], j].mean() for j in range(n)])
    overall = float(values[off].mean())
    body = np.column_stack([values, row_means])
    body = np.vstack([body, np.append(col_means, overall)])
    df = pd.DataFrame(body, index=pd.Index(mods + [MEAN], name="query"),
                      columns=pd.Index(mods + [MEAN], name="retrieval"))
    metric = f"mAP@{_k_label(k)}"
    df.attrs.update(
        title=_title(metric, proto, split, data_label),
        metric=metric,
        protocol=proto,
        split=split,
        k=_k_label(k),
        data_label=data_label,
        modalities=list(mods),
        fallback_cells=[list(c) for c in fallback],
        overall_mean=overall,
        n_pairs=n * (n - 1),
    )
    return df


# --------------------------------------------------------------------------- text output


def _cells(df: pd.DataFrame, digits: int) -> list[list[str]]:
    fallback = {tuple(c) for c in df.attrs.get("fallback_cells", [])}
    rows = []
    for q in df.index:
        row = []
        for r in df.columns:
            v = df.at[q, r]
            text = _DASH if (v is None or (isinstance(v, float) and math.isnan(v))) else f"{v:.{digits}f}"
            if (q, r) in fallback:
                text += "*"
            row.append(text)
        rows.append(row)
    return rows


def _notes(df: pd.DataFrame) -> list[str]:
    a = df.attrs
    notes = [
        f"protocol: {a.get('protocol')}; split: {a.get('split')}; K: {a.get('k')}; data: {a.get('data_label')}",
        f"overall mean over the {a.get('n_pairs')} ordered pairs: {a.get('overall_mean', float('nan')):.4f}",
    ]
    if a.get("fallback_cells"):
        cells = ", ".join(f"{q}→{r}" for q, r in a["fallback_cells"])
        notes.append(f"* scored with the independent protocol (no attention block links the pair): {cells}")
    return notes


def format_table(df: pd.DataFrame, digits: int = 3) -> str:
    """The table as aligned plain text for a terminal: title, grid ("—" on the diagonal), notes."""
    header = ["query \\ retrieval"] + [str(c) for c in df.columns]
    rows = [[str(q)] + cells for q, cells in zip(df.index, _cells(df, digits))]
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    out = [df.attrs.get("title", ""), line(header), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    return "\n".join(out + [""] + _notes(df))


def to_markdown(df: pd.DataFrame, digits: int = 3) -> str:
    """The table as Markdown: a heading with the title, the grid, then the notes."""
    header = ["query \\ retrieval"] + [str(c) for c in df.columns]
    lines = [f"### {df.attrs.get('title', '')}", "",
             "| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for q, cells in zip(df.index, _cells(df, digits)):
        name = f"**{q}**" if q == MEAN else str(q)
        lines.append("| " + " | ".join([name] + cells) + " |")
    return "\n".join(lines + [""] + [f"- {n}" for n in _notes(df)]) + "\n"


def table_record(df: pd.DataFrame) -> dict:
    """The JSON record of a table (what :func:`write_table` writes to ``.json``)."""
    a = df.attrs
    mods = list(a.get("modalities") or [m for m in df.index if m != MEAN])
    clean = lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)  # noqa: E731
    return {
        "format": TABLE_FORMAT,
        "format_version": 1,
        "title": a.get("title"),
        "metric": a.get("metric"),
        "protocol": a.get("protocol"),
        "split": a.get("split"),
        "k": a.get("k"),
        "data_label": a.get("data_label"),
        "modalities": mods,
        "matrix": {q: {r: clean(df.at[q, r]) for r in mods} for q in mods},
        "row_means": {q: clean(df.at[q, MEAN]) for q in mods},
        "column_means": {r: clean(df.at[MEAN, r]) for r in mods},
        "overall_mean": clean(a.get("overall_mean")),
        "n_pairs": a.get("n_pairs"),
        "fallback_cells": a.get("fallback_cells", []),
    }


def write_table(df: pd.DataFrame, stem: str | os.PathLike) -> dict[str, Path]:
    """Write ``stem.md``, ``stem.csv`` and ``stem.json`` (each atomically); return their paths by extension.

    The CSV holds the full-precision matrix with row/column means (empty cells on the diagonal);
    the JSON holds protocol, split, K, data label, the matrix, row and column means, the overall
    mean and the fallback cells (:func:`read_table` reads it back).
    """
    stem = Path(stem)
    paths = {ext: stem.with_name(stem.name + "." + ext) for ext in ("md", "csv", "json")}
    with atomic_file(paths["md"]) as f:
        f.write(to_markdown(df))
    with atomic_file(paths["csv"]) as f:
        df.to_csv(f, float_format="%.17g")
    with atomic_file(paths["json"]) as f:
        json.dump(table_record(df), f, indent=2, ensure_ascii=False)
        f.write("\n")
    return paths


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Rebuild the DataFrame (values and attrs) from a JSON file written by :func:`write_table`."""
    path = Path(path)
    try:
        rec = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(rec, dict) or rec.get("format") != TABLE_FORMAT:
        raise ValueError(f"{path}: not a {TABLE_FORMAT} file")
    mods = rec["modalities"]
    values = np.array([[np.nan if rec["matrix"][q][r] is None else rec["matrix"][q][r] for r in mods] for q in mods])
    k = None if rec["k"] == "all" else rec["k"]
    return _assemble(values, mods, proto=rec["protocol"], split=rec["split"], k=k,
                     data_label=rec["data_label"], fallback=rec.get("fallback_cells", []))
