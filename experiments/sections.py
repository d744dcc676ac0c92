"""Extra sections of a cross-modal result: each row's recipe, the classical baselines beside the rows, the claims under every protocol, the oracle-pairs leak, and loss curves.

Every function here formats recorded numbers (the per-run records of ``results/NAME.json``),
so a re-render writes the same text; nothing trains. The options that turn them on are the
cross_modal kind's (``experiments.kinds.cross_modal``): ``recipes``, ``baselines``, ``curves``,
``oracle_reference``.
"""

from __future__ import annotations

import numpy as np

from experiments.oracle import LEAK_TITLE, ORACLE, protocol_label
from experiments.report import fmt, fmt_mean_std, fmt_signed, markdown_table, mean_sd

#: Which fields of a run config a recipe line may show (the data, plan and seed are the experiment's).
_NOT_RECIPE = {"model": ("modalities", "stages"), "train": ("dataset", "seed")}
#: What the summary calls each baseline of ``cvs_tf.evaluation.baselines``.
BASELINE_NAMES = {"posterior": "posterior product (logistic regression, C by CV on train)",
                  "cca": "CCA (regularised)", "label": "label-space baseline (logistic regression)",
                  "chance": "chance (random ranking)"}
CURVE_TAGS = ("loss/loss", "loss/reconstruction")


# --------------------------------------------------------------------------- recipes


def recipe_text(config: dict, preset: str | None) -> str:
    """The fields of a resolved run config that differ from the library defaults, as ``section.field=value``."""
    from cvs_tf.config import RunConfig

    default = RunConfig().to_dict()
    diffs = [f"{sec}.{k}={_show(v)}" for sec, values in config.items() for k, v in values.items()
             if k not in _NOT_RECIPE.get(sec, ()) and _show(default[sec].get(k)) != _show(v)]
    head = f"preset `{preset}`" if preset else "no preset"
    return f"{head}; " + (", ".join(diffs) if diffs else "the library defaults")


def _show(v) -> str:
    return str(list(v) if isinstance(v, tuple) else v)


def recipe_lines(exp, runs: list[dict]) -> list[str]:
    """One header line per variant: its recipe as run (the first recorded run of it)."""
    first = {}
    for r in runs:
        if "config" in r:
            first.setdefault(r["variant"], r["config"])
    lines = [f"recipe of `{v.name}` (as run; fields that differ from the library defaults): "
             f"{recipe_text(first[v.name], v.preset)}" for v in exp.variants if v.name in first]
    return lines


# --------------------------------------------------------------------------- baselines


def baseline_values(fs, names: list[str], k: int, modalities) -> dict:
    """``{name: {"overall_mean", "title", "val"[, "recall"]}}`` of the classical baselines: test overall mAP@k
    (hyper-parameters on val), the overall val mAP@k (train and val only) and, for instance-paired sets,
    the test recall summary (:func:`experiments.instance.recall_summary`)."""
    from cvs_tf.evaluation.baselines import baseline_tables, baseline_validation_scores
    from experiments.instance import baseline_recall

    tables, _ = baseline_tables(fs, names, modalities=modalities, k=k)
    val = baseline_validation_scores(fs, modalities, k=k)
    out = {}
    for b, df in tables.items():
        out[b] = {"overall_mean": float(df.attrs["overall_mean"]), "title": str(df.attrs["title"]), "val": val.get(b)}
        if baseline_recall(df):
            out[b]["recall"] = baseline_recall(df)
    return out


def margin_lines(srows: list[dict], rec: dict) -> list[str]:
    """The strongest recorded baseline (chance aside) and each variant's margin over it; [] without one."""
    from cvs_tf.evaluation.baselines import strongest_baseline

    learned = {b: v["overall_mean"] for b, v in (rec.get("baselines") or {}).items() if b != "chance"}
    if not learned or not srows:
        return []
    name, value = strongest_baseline(learned)
    margins = ", ".join(f"{s['variant']} {fmt_signed(s['mean'] - value)}" for s in srows)
    return [f"Strongest baseline: {BASELINE_NAMES.get(name, name)}, {fmt(value)}. Margin over it: {margins}.", ""]


def baseline_rows(rec: dict) -> list[list[str]]:
    """Summary-table rows of the baselines recorded with a dataset (no spread: they are deterministic)."""
    return [[f"*{BASELINE_NAMES.get(b, b)}* (baseline, `python -m experiments.baselines`)", fmt(v["overall_mean"]),
             "—", "—", "—"] for b, v in (rec.get("baselines") or {}).items()]


# --------------------------------------------------------------------------- claims under every protocol


def claims_by_protocol(claims: list[dict], protocols: list[str], dataset: str, label: str) -> list[str]:
    """One table: each claim (rows) under each protocol (columns), verdict and paired mean difference."""
    mine = [c for c in claims if c["dataset"] == dataset]
    if not mine or len(protocols) < 2:
        return []
    cell = {(c["claim"], c["protocol"]): c for c in mine}
    rows = []
    for text in dict.fromkeys(c["claim"] for c in mine):
        row = [text]
        for p in protocols:
            c = cell.get((text, p))
            diff = None if c is None or "a_mean" not in c else c["a_mean"] - c["b_mean"]
            row.append("—" if c is None else f"**{c['verdict']}** ({fmt_signed(diff)})")
        rows.append(row)
    return [f"#### The claims under each protocol — {label}", "",
            "Verdict and mean difference (a − b) of each claim; the detail lines are under each protocol above.", "",
            markdown_table(["claim"] + [protocol_label(p) for p in protocols], rows), ""]


# --------------------------------------------------------------------------- the oracle-pairs leak


def leak_section(summaries: list[dict], dataset: str, label: str, reference: str | None) -> list[str]:
    """How far the oracle-pairs leak moves each variant over the independent protocol (paired per seed)."""
    by_p = {s["protocol"]: {v["variant"]: v for v in s["variants"]} for s in summaries if s["dataset"] == dataset}
    if ORACLE not in by_p or "independent" not in by_p:
        return []
    rows = []
    for name, o in by_p[ORACLE].items():
        ind = by_p["independent"].get(name)
        if ind is None or not o["per_seed"]:
            continue
        seeds = [s for s in o["seeds"] if s in ind["seeds"]]
        d = np.array([o["per_seed"][o["seeds"].index(s)] - ind["per_seed"][ind["seeds"].index(s)] for s in seeds])
        m, sd = mean_sd(d) if len(d) else (float("nan"), float("nan"))
        rel = 100 * m / ind["mean"] if ind["mean"] else float("nan")
        rows.append([name, fmt_mean_std(ind["mean"], ind["std"]), fmt_mean_std(o["mean"], o["std"]),
                     fmt_signed(m) + ("" if np.isnan(sd) else f" ± {sd:.3f}"), f"{fmt_signed(rel, 1)}%",
                     "no block: scored independent" if o.get("all_fallback") else "attended with a leaked partner"])
    lines = [f"#### How much the test-time pairing leak inflates each variant — {label} (oracle-pairs: {LEAK_TITLE})",
             "",
             markdown_table(["variant", "independent", "oracle-pairs", "oracle − independent (paired)",
                             "relative", "scored"], rows), ""]
    return lines + ([f"- beside: {reference}", ""] if reference else [])


# --------------------------------------------------------------------------- loss curves


def curve_record(run_dir) -> dict:
    """``{split: {tag: [[epoch, value], …]}}`` of the loss curves a run logged (stages concatenated)."""
    from experiments.kinds.loss_curves import read_scalars, with_global_epoch

    rows, _ = with_global_epoch(read_scalars(run_dir))
    out: dict = {}
    for r in sorted(rows, key=lambda r: r["epoch"]):
        if r["tag"] in CURVE_TAGS or r["tag"] == "metric/map":
            out.setdefault(r["split"], {}).setdefault(r["tag"], []).append([r["epoch"], r["value"]])
    return out


def _trend(points: list) -> str:
    if not points:
        return "—"
    first, last = points[0][1], points[-1][1]
    low = min(p[1] for p in points)
    change = f"{fmt_signed(100 * (last - first) / abs(first), 0)}%" if first else "—"
    return f"{first:.4g} → {last:.4g} (min {low:.4g}; {change})"


def curves_section(ctx, runs: list[dict], data, single: bool) -> list[str]:
    """Per run of the ``curves`` variants: epochs, the loss terms' first → last values, divergence; one plot."""
    from experiments.plots import plot_curves
    from experiments.report import figure_path

    chosen = [r for r in runs if r["variant"] in ctx.exp.options.get("curves", []) and "curve" in r]
    if not chosen:
        return []
    rows = []
    for r in sorted(chosen, key=lambda r: (r["variant"], r["seed"])):
        tr, va = r["curve"].get("train", {}), r["curve"].get("validation", {})
        epochs = len(tr.get("loss/loss", []))
        status = f"**diverged**: {r['diverged']}" if r.get("diverged") else "finite to the end"
        rows.append([r["variant"], str(r["seed"]), str(epochs), _trend(tr.get("loss/reconstruction", [])),
                     _trend(va.get("loss/reconstruction", [])), _trend(tr.get("loss/loss", [])), status])
    path = figure_path(ctx, ("" if single else f"-{data.spec.name}") + "-curves")
    plot_curves(chosen, path, title=f"{ctx.exp.title}: loss curves\n{data.spec.label} ({data.label})")
    header = ["variant", "seed", "epochs logged", "train reconstruction (first → last)",
              "validation reconstruction", "train total loss", "training"]
    return [f"#### Loss curves — {data.spec.label}", "", markdown_table(header, rows), "",
            f"![{ctx.exp.name} curves]({path.name})", ""]


__all__ = ["BASELINE_NAMES", "baseline_rows", "margin_lines", "baseline_values", "claims_by_protocol", "curve_record",
           "curves_section", "leak_section", "recipe_lines", "recipe_text"]
