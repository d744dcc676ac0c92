"""Results of an experiment as text: mean ± std over seeds beside the thesis value, Markdown tables, the header, ``results/NAME.{md,csv,json}``.

Nothing here trains or loads data; every kind formats and writes through these functions.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cvs_tf.utils.atomic import atomic_file, write_json_atomic
from experiments.kinds import get_kind
from experiments.oracle import LEAK_TITLE, is_oracle, with_leak_title

DASH = "—"
MEAN = "mean"
CELL_LEGEND = ("each cell: our mean ± sample std over seeds / thesis value / ours − thesis "
               "(the thesis parts appear only where the thesis reports that cell; — on the diagonal)")


# --------------------------------------------------------------------------- numbers


def cell_key(q: str, r: str) -> str:
    """Thesis cell key of a table position: ``image>text``, ``image>mean``, ``mean>text``, ``mean``."""
    return MEAN if q == MEAN and r == MEAN else f"{q}>{r}"


def aggregate(frames: list[pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Element-wise mean and sample standard deviation (n - 1; NaN for one seed) of same-shaped tables."""
    stack = np.stack([f.to_numpy(dtype=float) for f in frames])
    valid = ~np.isnan(stack).all(0)
    mean = np.full(stack.shape[1:], np.nan)
    std = np.full(stack.shape[1:], np.nan)
    mean[valid] = stack[:, valid].mean(0)
    if len(frames) > 1:
        std[valid] = stack[:, valid].std(0, ddof=1)
    like = frames[0]
    return (pd.DataFrame(mean, index=like.index, columns=like.columns),
            pd.DataFrame(std, index=like.index, columns=like.columns))


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample standard deviation (NaN for one value) of per-seed numbers."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan")


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def fmt(v, digits: int = 3) -> str:
    return DASH if _missing(v) else f"{v:.{digits}f}"


def fmt_signed(v, digits: int = 3) -> str:
    return DASH if _missing(v) else f"{v:+.{digits}f}".replace("-", "−")


def fmt_mean_std(m, s, digits: int = 3) -> str:
    if _missing(m):
        return DASH
    if _missing(s):  # one seed: no spread to show
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def cell_text(m, s, thesis) -> str:
    """One grid cell: ``ours mean ± std / thesis / ours − thesis`` (thesis parts only when known)."""
    ours = fmt_mean_std(m, s)
    if ours == DASH or thesis is None:
        return ours
    return f"{ours} / {thesis:.3f} / {fmt_signed(m - thesis)}"


# --------------------------------------------------------------------------- tables


def markdown_table(header: list[str], rows: list[list[str]], align_first_left: bool = True) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join((["---"] if align_first_left else ["---:"]) + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def grid_markdown(mean: pd.DataFrame, std: pd.DataFrame, thesis: dict | None) -> str:
    """Query × retrieval grid with row/column means, each cell ours ± std beside the thesis value."""
    thesis = thesis or {}
    header = ["query \\ retrieval"] + [str(c) for c in mean.columns]
    rows = []
    for q in mean.index:
        row = [f"**{q}**" if q == MEAN else str(q)]
        for r in mean.columns:
            row.append(cell_text(mean.at[q, r], std.at[q, r], thesis.get(cell_key(q, r))))
        rows.append(row)
    return markdown_table(header, rows)


def long_rows(mean: pd.DataFrame, std: pd.DataFrame, frames: list[pd.DataFrame], thesis: dict | None,
              **context) -> list[dict]:
    """CSV rows: one per table cell with mean, std, seeds, thesis value and difference."""
    thesis = thesis or {}
    rows = []
    for q in mean.index:
        for r in mean.columns:
            m = mean.at[q, r]
            if np.isnan(m):
                continue
            t = thesis.get(cell_key(q, r))
            rows.append({**context, "query": q, "retrieval": r, "mean": m, "std": std.at[q, r], "n_seeds": len(frames),
                         "thesis": t, "diff": None if t is None else m - t,
                         "per_seed": ";".join(f"{f.at[q, r]:.6f}" for f in frames)})
    return rows


def json_table(df: pd.DataFrame) -> dict:
    """A mAP table as its JSON record (values and attrs)."""
    from cvs_tf.evaluation.table import table_record

    rec = table_record(df)
    if "unpaired" in df.attrs:  # oracle-pairs: items that found no same-class partner
        rec["unpaired"] = int(df.attrs["unpaired"])
    return rec


def table_from_record(rec: dict) -> pd.DataFrame:
    """A table back from its JSON record (``table_record``), values and attrs."""
    from cvs_tf.evaluation.table import table_from_matrix

    mods = rec["modalities"]
    values = [[np.nan if rec["matrix"][q][r] is None else rec["matrix"][q][r] for r in mods] for q in mods]
    df = table_from_matrix(values, mods, proto=rec["protocol"], split=rec["split"],
                           k=None if rec["k"] == "all" else rec["k"], data_label=rec["data_label"],
                           fallback=rec.get("fallback_cells", []))
    if "unpaired" in rec:
        df.attrs["unpaired"] = rec["unpaired"]
    return with_leak_title(df) if is_oracle(rec["protocol"]) else df


# --------------------------------------------------------------------------- header and record


def training_note(exp, quick: bool) -> str:
    """One line on the training settings of a full (or --quick) run of ``exp``."""
    from cvs_tf.config import TrainConfig

    t = {**exp.train, **(exp.quick.train if quick else {})}
    d = TrainConfig()
    get = lambda k: t.get(k, getattr(d, k))  # noqa: E731
    steps = f"{get('steps_per_epoch')} steps" if get("steps_per_epoch") else "one pass over the data"
    stop = ("no early stopping (every epoch runs; the epoch with the best validation mAP is kept)"
            if get("early_stopping") == "none" else
            f"early stopping on `{get('early_stopping')}` of the validation split (patience {get('patience')}), "
            "best validation epoch kept")
    presets = "" if not any(v.preset for v in exp.variants) else (
        "; a variant with a preset trains with the preset's settings where the experiment sets none (recipes below)")
    return (f"training: up to {get('epochs')} epochs per stage ({steps} each), batch {get('batch_size')}, "
            f"Adam lr {get('lr')}, {stop}{presets}; the test split is used only for the numbers below")


def protocol_line(protocols: list[str], k: int) -> str:
    """The header line on the test-time protocols; a label-leaking diagnostic among them is named as such."""
    honest = [p for p in protocols if not is_oracle(p)]
    parts = [f"{', '.join(honest)} (no label and no ground-truth pairing at test time)"] if honest else []
    if len(honest) < len(protocols):
        parts.append(f"oracle-pairs — **{LEAK_TITLE}**: each test item goes through the attention block with a "
                     "same-class partner drawn with the test labels")
    return f"- protocol: {'; '.join(parts)}; metric mAP@{k} on the test split"


def header_markdown(ctx, datas: list, extra: list[str] | None = None) -> list[str]:
    """Title (with the data label), then the protocol, seeds, data, training and command lines."""
    exp = ctx.exp
    kind = get_kind(exp.kind)
    labels = {d.label for d in datas}
    label = labels.pop() if len(labels) == 1 else "mixed: " + "; ".join(f"{d.spec.label}: {d.label}" for d in datas)
    title = f"## {exp.title} — {label}" if datas else f"## {exp.title}"
    lines = [title, ""]
    if ctx.quick:
        lines += ["**Quick run** (`--quick`: scaled data, few epochs): a smoke test, not a result.", ""]
    if exp.protocols and kind.evaluates:
        lines.append(protocol_line(exp.protocols, exp.k))
    if ctx.seeds and kind.seeded:
        lines.append(f"- seeds: {', '.join(map(str, ctx.seeds))} ({len(ctx.seeds)} run(s) per variant; "
                     "± is the sample standard deviation over seeds, left out for one seed)")
    for d in datas:
        lines.append(f"- data ({d.spec.label}): {d.describe()}")
    if kind.trains:
        lines.append(f"- {training_note(exp, ctx.quick)}")
    if exp.thesis_ref:
        lines.append(f"- thesis reference: {exp.thesis_ref}")
    lines += [f"- {n}" for n in exp.notes + list(extra or [])]
    lines.append(f"- command: `{ctx.command}`" + (f" (run as part of `{ctx.batch}`)" if ctx.batch else ""))
    if ctx.code:
        lines.append(f"- code: {ctx.code}")
    return lines + [""]


def base_record(ctx, datas: list) -> dict:
    """The fields every ``results/NAME.json`` starts with."""
    import cvs_tf

    return {
        "format": "cvs_tf.experiment", "format_version": 1,
        "experiment": ctx.exp.name, "title": ctx.exp.title, "kind": ctx.exp.kind, "quick": ctx.quick,
        "seeds": ctx.seeds, "protocols": ctx.exp.protocols, "k": ctx.exp.k, "command": ctx.command,
        "batch_command": ctx.batch, "code": ctx.code,
        "data": [d.record() for d in datas], "package_version": cvs_tf.__version__,
        "spec": ctx.exp.to_dict(), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def outputs(markdown: list[str], rows: list[dict], record: dict) -> dict:
    """What a kind's ``run`` returns: the Markdown lines, the CSV rows and the JSON record."""
    return {"markdown": "\n".join(markdown), "rows": rows, "record": record}


# --------------------------------------------------------------------------- writing


def clean_json(obj):
    """NaN -> None, numpy scalars -> Python, recursively (for strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return clean_json(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_outputs(ctx, markdown: str, rows: list[dict], record: dict) -> dict[str, Path]:
    """Write ``results/NAME.md``, ``.csv`` and ``.json`` (each atomically) and return their paths."""
    out = Path(ctx.results)
    out.mkdir(parents=True, exist_ok=True)
    paths = {ext: out / f"{ctx.exp.name}.{ext}" for ext in ("md", "csv", "json")}
    with atomic_file(paths["md"]) as f:
        f.write(markdown.rstrip("\n") + "\n")
    with atomic_file(paths["csv"], newline="") as f:
        pd.DataFrame(rows).to_csv(f, index=False, float_format="%.6g")
    write_json_atomic(paths["json"], clean_json(record))
    return paths


def finish(ctx, out: dict, minutes: float) -> dict[str, Path]:
    """Add the wall time to a kind's outputs and write them."""
    md = out["markdown"].rstrip("\n") + f"\n\n_Wall time of this experiment: {minutes:.1f} min._\n"
    out["record"]["wall_min"] = round(minutes, 2)
    return write_outputs(ctx, md, out["rows"], out["record"])


def figure_path(ctx, suffix: str = "") -> Path:
    """``results/NAME<suffix>.png`` (the results folder is created)."""
    Path(ctx.results).mkdir(parents=True, exist_ok=True)
    return Path(ctx.results) / f"{ctx.exp.name}{suffix}.png"


__all__ = ["CELL_LEGEND", "MEAN", "aggregate", "base_record", "cell_key", "cell_text", "clean_json", "figure_path",
           "finish", "fmt", "fmt_mean_std", "fmt_signed", "grid_markdown", "header_markdown", "json_table",
           "long_rows", "markdown_table", "mean_sd", "outputs", "protocol_line", "table_from_record",
           "training_note", "write_outputs"]
