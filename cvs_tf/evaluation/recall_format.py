"""Instance-level recall records (``{query: {retrieval: {"1", "5", "10", "median_rank"}}}``) as rows, text and Markdown."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from cvs_tf.evaluation.metrics import RECALL_KS

MEAN = "mean"  # the label of a table's mean row or column


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
