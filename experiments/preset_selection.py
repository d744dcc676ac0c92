"""Choose ``--preset best`` over several real sets from validation only: ``python -m experiments.preset_selection``.

Reads the ``results/NAME.json`` of cross-modal experiments that ran the same candidate recipes
(``real_*_selection``). For every candidate present on every set, its score on a set is the mean
over seeds of the run's validation mAP@K minus the strongest baseline's validation mAP@K on that
set (chance excluded), so that sets of different difficulty weigh alike; the chosen recipe has the
highest mean margin over the sets. Test numbers are printed beside it and never used to choose.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from experiments.errors import ExperimentError
from experiments.report import fmt, fmt_signed, markdown_table


def _load(path: Path) -> dict:
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExperimentError(f"{path}: cannot read an experiment result ({exc})") from None
    if rec.get("kind") != "cross_modal" or not rec.get("runs"):
        raise ExperimentError(f"{path}: not a finished cross-modal experiment result")
    if rec.get("quick"):
        raise ExperimentError(f"{path}: a --quick result; selection needs the full runs")
    return rec


def set_scores(rec: dict) -> tuple[str, dict, tuple[str, float]]:
    """``(dataset, {variant: {"val": [...], "test": [...]}}, (strongest baseline, its val))`` of one result."""
    data = rec["data"][0]
    base = {b: v["val"] for b, v in (data.get("baselines") or {}).items() if b != "chance" and v.get("val") is not None}
    if not base:
        raise ExperimentError(f"{rec['experiment']}: no baseline validation scores recorded (rerun with today's code)")
    strongest = max(base.items(), key=lambda kv: kv[1])
    out: dict = {}
    for r in rec["runs"]:
        if r.get("val_overall") is None or "tables" not in r:
            continue
        test = r["tables"]["independent"]["overall_mean"] if "independent" in r["tables"] else None
        cell = out.setdefault(r["variant"], {"val": [], "test": []})
        cell["val"].append(float(r["val_overall"]))
        cell["test"].append(test)
    return data["dataset"], out, strongest


def select(recs: list[dict]) -> tuple[list[list[str]], str, list[str]]:
    """Table rows, the chosen variant and the header, from the loaded results."""
    sets = [set_scores(r) for r in recs]
    common = sorted(set.intersection(*(set(s[1]) for s in sets)), key=lambda v: list(sets[0][1]).index(v))
    if not common:
        raise ExperimentError("no candidate recipe ran on every set")
    margins = {v: [float(np.mean(s[1][v]["val"])) - s[2][1] for s in sets] for v in common}
    chosen = max(common, key=lambda v: np.mean(margins[v]))
    header = ["recipe"] + [f"{name}: val (margin over {b})" for name, _, (b, _) in sets] + ["mean val margin", "test (not used)"]
    rows = []
    for v in common:
        cells = [f"{fmt(np.mean(s[1][v]['val']))} ({fmt_signed(m)})" for s, m in zip(sets, margins[v])]
        tests = " / ".join(fmt(np.mean([t for t in s[1][v]["test"] if t is not None])) for s in sets)
        name = f"**{v}**" if v == chosen else v
        rows.append([name] + cells + [fmt_signed(float(np.mean(margins[v]))), tests])
    return rows, chosen, header


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.preset_selection", description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="+", type=Path, help="results/NAME.json of the real_*_selection experiments")
    p.add_argument("--out", type=Path, help="also write the Markdown table here")
    args = p.parse_args(argv)
    try:
        recs = [_load(path) for path in args.results]
        rows, chosen, header = select(recs)
    except ExperimentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seeds = sorted({r["seed"] for rec in recs for r in rec["runs"]})
    md = [f"Selection of `--preset best` on validation mAP@50 over {len(recs)} sets (seeds {', '.join(map(str, seeds))}); "
          "margin = candidate's mean val mAP − the set's strongest baseline's val mAP. Test (per set, in order) "
          "is reported, not used.", "", markdown_table(header, rows), "", f"Chosen: **{chosen}**.", ""]
    print("\n".join(md))
    if args.out:
        args.out.write_text("\n".join(md), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
