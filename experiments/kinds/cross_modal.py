"""Kind ``cross_modal`` (Tables 5–11, Figure 25, the real-data tables): variants × seeds per dataset, mAP grids beside the thesis, claims checked."""

from __future__ import annotations

import json

from experiments.claims import check_claims
from experiments.context import Context
from experiments.kinds import Kind, register_kind
from experiments.report import (
    CELL_LEGEND,
    MEAN,
    aggregate,
    base_record,
    figure_path,
    fmt,
    fmt_mean_std,
    fmt_signed,
    grid_markdown,
    header_markdown,
    json_table,
    long_rows,
    markdown_table,
    outputs,
    table_from_record,
)

SUMMARY_HEADER = ["variant", "ours (mean ± std)", "thesis", "ours − thesis", "per seed"]


def run_cross_modal(ctx: Context) -> dict:
    """Train every (dataset, variant, seed), evaluate each protocol on the test split, render the tables."""
    exp = ctx.exp
    datas = [ctx.resolve(d) for d in exp.datasets]
    runs = []
    for data in datas:
        for v in exp.variants:
            for seed in ctx.seeds:
                tr = ctx.train(data, v, seed)
                tables = ctx.evaluate(tr)
                best = [{"stage": h["stage"], "best_epoch": h["best_epoch"], "epochs_run": len(h["epochs"])}
                        for h in json.loads((tr.run_dir / "history.json").read_text())["stages"]]
                runs.append({"dataset": data.spec.name, "variant": v.name, "seed": seed, "run_dir": str(tr.run_dir),
                             "wall_s": round(tr.wall_s, 1), "stages": best,
                             "tables": {p: json_table(df) for p, df in tables.items()}})
    return render_cross_modal(ctx, datas, runs)


def _fallback_note(frames, n_mods: int) -> list[str]:
    """Which cells fell back to the independent protocol (no attention block links the pair)."""
    fallback = sorted({f"{q}→{r}" for f in frames for q, r in f.attrs.get("fallback_cells", [])})
    if fallback and len(fallback) == n_mods * (n_mods - 1):
        return ["- every cell scored with the independent protocol: this space has no attention block "
                "to pass the pairs through", ""]
    if fallback:
        return [f"- scored with the independent protocol (no attention block links the pair): {', '.join(fallback)}", ""]
    return []


def _variant_grid(exp, data, v, p: str, frames, rows: list, md: list) -> dict:
    """The grid of one (variant, protocol): Markdown lines, CSV rows; returns its summary row."""
    mean, std = aggregate(frames)
    t = data.spec.thesis.get(v.name)
    if len(exp.variants) > 1 or len(exp.protocols) > 1:
        md += [f"#### {v.name} — protocol {p}", ""]
    md += [grid_markdown(mean, std, t), ""]
    md += _fallback_note(frames, len(mean.index) - 1)
    rows += long_rows(mean, std, frames, t, experiment=exp.name, dataset=data.spec.name,
                      data_label=data.label, variant=v.name, protocol=p, k=exp.k)
    return {"variant": v.name, "mean": mean.at[MEAN, MEAN], "std": std.at[MEAN, MEAN],
            "thesis": (t or {}).get(MEAN), "per_seed": [float(f.attrs["overall_mean"]) for f in frames]}


def _summary(exp, data, p: str, srows: list[dict]) -> list[str]:
    """The overall-mean table of one protocol, and the published peers as context."""
    md = [f"#### Overall mean mAP@{exp.k} ({p}) — {data.spec.label}", "",
          markdown_table(SUMMARY_HEADER,
                         [[s["variant"], fmt_mean_std(s["mean"], s["std"]), fmt(s["thesis"]),
                           fmt_signed(None if s["thesis"] is None else s["mean"] - s["thesis"]),
                           ", ".join(f"{x:.3f}" for x in s["per_seed"])] for s in srows]), ""]
    if data.spec.context:
        md += ["Published peers on the same data (context only, not run here): "
               + "; ".join(f"{name}: " + ", ".join(f"{k.replace('>', '→')} {v:.3f}" for k, v in cells.items())
                           for name, cells in data.spec.context.items()), ""]
    return md


def _bars(ctx: Context, data, srows: list[dict], single: bool) -> list[str]:
    from experiments.plots import plot_variant_bars

    path = figure_path(ctx, "" if single else f"-{data.spec.name}")
    plot_variant_bars(srows, path, title=f"{ctx.exp.title}\n{data.spec.label} ({data.label})", k=ctx.exp.k)
    return [f"![{ctx.exp.name}]({path.name})", ""]


def render_cross_modal(ctx: Context, datas: list, runs: list[dict]) -> dict:
    """Markdown, CSV rows and JSON record of a cross-modal experiment from its per-run tables."""
    exp = ctx.exp
    md = header_markdown(ctx, datas, [CELL_LEGEND])
    rows, claims, summaries = [], [], []
    for data in datas:
        per = {}  # (variant, protocol) -> [df per seed]
        for r in sorted((r for r in runs if r["dataset"] == data.spec.name), key=lambda r: r["seed"]):
            for p, rec in r["tables"].items():
                per.setdefault((r["variant"], p), []).append(table_from_record(rec))
        md += [f"### {data.spec.label} ({data.label})", ""]
        for p in exp.protocols:
            srows = [_variant_grid(exp, data, v, p, per[(v.name, p)], rows, md) for v in exp.variants]
            md += _summary(exp, data, p, srows)
            summaries.append({"dataset": data.spec.name, "protocol": p, "variants": srows})
            if exp.claims:
                lines, recs = check_claims(ctx, {s["variant"]: s["per_seed"] for s in srows}, data)
                md += [f"#### The thesis's claims on these numbers ({p})", ""] + lines + [""]
                claims += [{**r, "protocol": p} for r in recs]
        if exp.options.get("figure") == "bars":
            md += _bars(ctx, data, summaries[-len(exp.protocols)]["variants"], len(datas) == 1)
    record = {**base_record(ctx, datas), "runs": runs, "summary": summaries, "claims": claims}
    return outputs(md, rows, record)


KIND = register_kind(Kind("cross_modal", run_cross_modal, evaluates=True, thesis_by_variant=True,
                          render=render_cross_modal))
