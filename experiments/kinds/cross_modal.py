"""Kind ``cross_modal`` (Tables 5–11, Figure 25, the real-data tables): variants × seeds per dataset, mAP grids beside the thesis, claims checked.

Options (``options`` of the config): ``figure: "bars"`` (overall means as bars), ``recipes: true``
(each row's resolved recipe in the header), ``baselines: ["label", …]`` (classical baselines of
``cvs_tf.evaluation.baselines`` on the same test split, beside the rows), ``curves: [variant, …]``
(loss curves of those variants' runs), ``oracle_reference`` (the text set beside the oracle-pairs
leak table). A run whose loss turns NaN/Inf is recorded as diverged, and the rows use the seeds
that finished.
"""

from __future__ import annotations

import json
import time

from experiments.claims import check_claims
from experiments.context import Context
from experiments.errors import SpecError
from experiments.instance import instance_section
from experiments.kinds import Kind, register_kind
from experiments.oracle import is_oracle, protocol_label
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
from experiments.sections import (
    BASELINE_NAMES,
    baseline_rows,
    baseline_values,
    claims_by_protocol,
    curve_record,
    curves_section,
    leak_section,
    margin_lines,
    recipe_lines,
)

SUMMARY_HEADER = ["variant", "ours (mean ± std)", "thesis", "ours − thesis", "per seed"]
OPTIONS = ("figure", "recipes", "baselines", "curves", "oracle_reference")


def run_cross_modal(ctx: Context) -> dict:
    """Train every (dataset, variant, seed), evaluate each protocol on the test split, render the tables."""
    exp = ctx.exp
    datas = [ctx.resolve(d) for d in exp.datasets]
    runs = []
    for data in datas:
        if exp.options.get("baselines"):
            data.baselines = baseline_values(data.featureset(), exp.options["baselines"], exp.k, data.spec.modalities)
        for v in exp.variants:
            for seed in ctx.seeds:
                runs.append(_one_run(ctx, data, v, seed))
    return render_cross_modal(ctx, datas, runs)


def _one_run(ctx: Context, data, v, seed: int) -> dict:
    """Train and evaluate one (dataset, variant, seed); a diverged run is recorded as such, not raised."""
    from cvs_tf.training.callbacks import TrainingDivergedError

    rec = {"dataset": data.spec.name, "variant": v.name, "seed": seed, "run_dir": str(ctx.run_dir(data, v, seed))}
    t0 = time.time()
    try:
        tr = ctx.train(data, v, seed)
    except TrainingDivergedError as exc:
        ctx.log(f"    diverged: {exc}")
        rec.update(wall_s=round(time.time() - t0, 1), diverged=str(exc), config=ctx.run_config(v, data, seed).to_dict())
    else:
        tables = ctx.evaluate(tr)
        best = [{"stage": h["stage"], "best_epoch": h["best_epoch"], "epochs_run": len(h["epochs"])}
                for h in json.loads((tr.run_dir / "history.json").read_text())["stages"]]
        rec.update(wall_s=round(tr.wall_s, 1), stages=best, config=tr.config.to_dict(),
                   tables={p: json_table(df) for p, df in tables.items()},
                   val_overall=(tr.result.metrics.get("val") or {}).get("overall_mean"))
        if (tr.result.metrics.get("recall") or {}).get("test"):
            rec["recall"] = tr.result.metrics["recall"]["test"]
    if v.name in ctx.exp.options.get("curves", []):
        rec["curve"] = curve_record(rec["run_dir"])
    return rec


def _fallback_note(frames, n_mods: int) -> list[str]:
    """Which cells fell back to the independent protocol (no attention block links the pair)."""
    fallback = sorted({f"{q}→{r}" for f in frames for q, r in f.attrs.get("fallback_cells", [])})
    if fallback and len(fallback) == n_mods * (n_mods - 1):
        return ["- every cell scored with the independent protocol: this space has no attention block "
                "to pass the pairs through", ""]
    if fallback:
        return [f"- scored with the independent protocol (no attention block links the pair): {', '.join(fallback)}", ""]
    return []


def _unpaired_note(frames) -> list[str]:
    n = sum(int(f.attrs.get("unpaired", 0)) for f in frames)
    return [f"- {n} test item(s) over the seeds had no same-class partner in the other modality and were scored "
            "on the plain embedding", ""] if n else []


def _variant_grid(exp, data, v, p: str, runs: list[dict], rows: list, md: list) -> dict:
    """The grid of one (variant, protocol): Markdown lines, CSV rows; returns its summary row."""
    frames = [table_from_record(r["tables"][p]) for r in runs]
    mean, std = aggregate(frames)
    t = data.spec.thesis.get(v.name)
    if len(exp.variants) > 1 or len(exp.protocols) > 1:
        md += [f"#### {v.name} — protocol {protocol_label(p)}", ""]
    md += [grid_markdown(mean, std, t), ""]
    n = len(mean.index) - 1
    md += _fallback_note(frames, n) + _unpaired_note(frames)
    rows += long_rows(mean, std, frames, t, experiment=exp.name, dataset=data.spec.name,
                      data_label=data.label, variant=v.name, protocol=p, k=exp.k)
    return {"variant": v.name, "mean": mean.at[MEAN, MEAN], "std": std.at[MEAN, MEAN],
            "thesis": (t or {}).get(MEAN), "per_seed": [float(f.attrs["overall_mean"]) for f in frames],
            "seeds": [r["seed"] for r in runs],
            "all_fallback": all(len(f.attrs.get("fallback_cells", [])) == n * (n - 1) for f in frames)}


def _summary(exp, data, p: str, srows: list[dict]) -> list[str]:
    """The overall-mean table of one protocol, the recorded baselines, and the published peers as context."""
    table = [[s["variant"], fmt_mean_std(s["mean"], s["std"]), fmt(s["thesis"]),
              fmt_signed(None if s["thesis"] is None else s["mean"] - s["thesis"]),
              ", ".join(f"{x:.3f}" for x in s["per_seed"])] for s in srows]
    md = [f"#### Overall mean mAP@{exp.k} ({protocol_label(p, inside=True)}) — {data.spec.label}", "",
          markdown_table(SUMMARY_HEADER, table + baseline_rows(data.record())), ""]
    md += margin_lines(srows, data.record())
    if data.spec.context:
        md += ["Published peers on the same data (context only, not run here): "
               + "; ".join(f"{name}: " + ", ".join(f"{k.replace('>', '→')} {v:.3f}" for k, v in cells.items())
                           for name, cells in data.spec.context.items()), ""]
    return md


def _diverged_note(runs: list[dict]) -> list[str]:
    bad = [r for r in runs if r.get("diverged")]
    return [f"- **diverged**: {r['variant']}, seed {r['seed']}: {r['diverged']} (left out of the tables)"
            for r in bad] + ([""] if bad else [])


def _bars(ctx: Context, data, srows: list[dict], single: bool) -> list[str]:
    from experiments.plots import plot_variant_bars

    path = figure_path(ctx, "" if single else f"-{data.spec.name}")
    plot_variant_bars(srows, path, title=f"{ctx.exp.title}\n{data.spec.label} ({data.label})", k=ctx.exp.k)
    return [f"![{ctx.exp.name}]({path.name})", ""]


def _dataset_section(ctx: Context, data, runs: list[dict], rows: list, claims: list, summaries: list) -> list[str]:
    """Everything under one dataset's heading: grids and summary per protocol, claims, leak, curves, bars."""
    exp = ctx.exp
    mine = sorted((r for r in runs if r["dataset"] == data.spec.name), key=lambda r: r["seed"])
    md = [f"### {data.spec.label} ({data.label})", ""] + _diverged_note(mine)
    finished = {v.name: [r for r in mine if r["variant"] == v.name and "tables" in r] for v in exp.variants}
    for p in exp.protocols:
        srows = [_variant_grid(exp, data, v, p, finished[v.name], rows, md) for v in exp.variants if finished[v.name]]
        md += _summary(exp, data, p, srows)
        summaries.append({"dataset": data.spec.name, "protocol": p, "variants": srows})
        if exp.claims:
            lines, recs = check_claims(ctx, {s["variant"]: dict(zip(s["seeds"], s["per_seed"])) for s in srows}, data)
            md += [f"#### The thesis's claims on these numbers ({protocol_label(p, inside=True)})", ""] + lines + [""]
            claims += [{**r, "protocol": p} for r in recs]
    inst, irows = instance_section(exp, data, finished, BASELINE_NAMES)
    md += inst
    if irows:
        summaries[-len(exp.protocols)]["instance"] = irows
    md += claims_by_protocol(claims, exp.protocols, data.spec.name, data.spec.label)
    md += leak_section(summaries, data.spec.name, data.spec.label, exp.options.get("oracle_reference"))
    md += curves_section(ctx, mine, data, len(exp.datasets) == 1)
    if exp.options.get("figure") == "bars" and summaries[-1]["variants"]:
        md += _bars(ctx, data, summaries[-len(exp.protocols)]["variants"], len(exp.datasets) == 1)
    return md


def render_cross_modal(ctx: Context, datas: list, runs: list[dict]) -> dict:
    """Markdown, CSV rows and JSON record of a cross-modal experiment from its per-run records."""
    exp = ctx.exp
    md = header_markdown(ctx, datas, [CELL_LEGEND] + (recipe_lines(exp, runs) if exp.options.get("recipes") else []))
    rows, claims, summaries = [], [], []
    for data in datas:
        md += _dataset_section(ctx, data, runs, rows, claims, summaries)
    record = {**base_record(ctx, datas), "runs": runs, "summary": summaries, "claims": claims}
    return outputs(md, rows, record)


def check_cross_modal(spec, where: str) -> None:
    """Spec check of the options: known keys, baselines by name, curve variants that exist."""
    o = spec.options
    unknown = sorted(set(o) - set(OPTIONS))
    if unknown:
        raise SpecError(f"{where}: options: unknown {', '.join(unknown)} (known: {', '.join(OPTIONS)})")
    if o.get("figure") not in (None, "bars"):
        raise SpecError(f"{where}: options.figure must be \"bars\", got {o['figure']!r}")
    bad = [b for b in o.get("baselines", []) if b not in BASELINE_NAMES]
    if not isinstance(o.get("baselines", []), list) or bad:
        raise SpecError(f"{where}: options.baselines must be a list of {', '.join(BASELINE_NAMES)}, got {bad or o['baselines']!r}")
    names = [v.name for v in spec.variants]
    bad = [c for c in o.get("curves", []) if c not in names]
    if not isinstance(o.get("curves", []), list) or bad:
        raise SpecError(f"{where}: options.curves must list variants ({', '.join(names)}), got {bad or o['curves']!r}")
    if o.get("oracle_reference") is not None and not any(is_oracle(p) for p in spec.protocols):
        raise SpecError(f"{where}: options.oracle_reference needs the oracle-pairs protocol")


KIND = register_kind(Kind("cross_modal", run_cross_modal, evaluates=True, thesis_by_variant=True, oracle=True,
                          check=check_cross_modal, render=render_cross_modal))
