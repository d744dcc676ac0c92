"""Instance-level rows of a cross-modal experiment: R@K of each query's own partner, beside the tuned baselines."""

from __future__ import annotations

import numpy as np

from experiments.report import fmt, fmt_mean_std, fmt_signed, markdown_table

KEYS = ("1", "5", "10", "median_rank")
HEADER = ["row", "R@1", "R@5", "R@10", "median rank", "image→text R@1", "image→text R@10", "seeds"]


def recall_summary(record: dict) -> dict:
    """``{"1", "5", "10", "median_rank"}`` means over the ordered pairs of one recall record, plus
    ``"i2t"``: image→text's record when both modalities are present."""
    recs = [r for per in record.values() for r in per.values()]
    out = {k: float(np.mean([r[k] for r in recs])) for k in KEYS}
    if "text" in record.get("image", {}):
        out["i2t"] = {k: float(record["image"]["text"][k]) for k in KEYS}
    return out


def baseline_recall(df) -> dict | None:
    """The recall summary of one baseline table (``df.attrs["recall"]``), or None."""
    return recall_summary(df.attrs["recall"]) if "recall" in df.attrs else None


def _strongest(baselines: dict) -> tuple[str, dict] | None:
    """The baseline with the highest mean R@1 + R@5 + R@10 over pairs."""
    rec = {b: v["recall"] for b, v in (baselines or {}).items() if v.get("recall")}
    if not rec:
        return None
    name = max(rec, key=lambda b: rec[b]["1"] + rec[b]["5"] + rec[b]["10"])
    return name, rec[name]


def _row(name: str, sums: list[dict], seeds: str) -> list[str]:
    cells = []
    for k in KEYS:
        v = [s[k] for s in sums]
        cells.append(fmt_mean_std(np.mean(v), np.std(v, ddof=1) if len(v) > 1 else float("nan"), 3 if k != "median_rank" else 1))
    for k in ("1", "10"):
        v = [s["i2t"][k] for s in sums if "i2t" in s]
        cells.append(fmt_mean_std(np.mean(v), np.std(v, ddof=1) if len(v) > 1 else float("nan")) if v else "—")
    return [name] + cells + [seeds]


def instance_section(exp, data, finished: dict[str, list[dict]], labels: dict[str, str]) -> tuple[list[str], list[dict]]:
    """Markdown of the instance-level table of one dataset (test split) and its summary rows; ([], [])
    for a class-paired set or runs without recall."""
    rows, srows = [], []
    for v in exp.variants:
        runs = [r for r in finished.get(v.name, []) if r.get("recall")]
        if not runs:
            continue
        sums = [recall_summary(r["recall"]) for r in runs]
        rows.append(_row(v.name, sums, ", ".join(str(r["seed"]) for r in runs)))
        srows.append({"variant": v.name, "per_seed": sums, "seeds": [r["seed"] for r in runs]})
    if not srows:
        return [], []
    base = data.record().get("baselines") or {}
    for b, rec in base.items():
        if rec.get("recall"):
            rows.append([f"*{labels.get(b, b)}* (baseline)"] + _row("", [rec["recall"]], "")[1:-1] + ["—"])
    md = [f"#### Instance level: R@K of each query's own partner (test split, mean over the ordered pairs) — "
          f"{data.spec.label}", "", markdown_table(HEADER, rows), ""]
    md += margin_lines(srows, base, labels)
    return md, srows


def margin_lines(srows: list[dict], baselines: dict, labels: dict[str, str]) -> list[str]:
    """The strongest instance-level baseline and each variant's paired margin over it (R@1, R@10)."""
    best = _strongest(baselines)
    if best is None:
        return []
    name, ref = best
    parts = []
    for s in srows:
        d1 = [x["1"] - ref["1"] for x in s["per_seed"]]
        d10 = [x["10"] - ref["10"] for x in s["per_seed"]]
        above = sum(a > 0 for a in d1)
        parts.append(f"{s['variant']} R@1 {fmt_signed(float(np.mean(d1)))} (above in {above} of {len(d1)} seeds), "
                     f"R@10 {fmt_signed(float(np.mean(d10)))}")
    return [f"Strongest baseline, instance level (by mean R@1 + R@5 + R@10): {labels.get(name, name)}, "
            f"R@1 {fmt(ref['1'])}, R@10 {fmt(ref['10'])}. Margin over it: " + "; ".join(parts) + ".", ""]


__all__ = ["baseline_recall", "instance_section", "recall_summary"]
