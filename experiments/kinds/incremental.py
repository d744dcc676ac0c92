"""Kind ``incremental`` (Table 13): stage-wise class-incremental runs over seeds, beside a CVS trained on every training class.

The protocol and its choices are described in :mod:`experiments.incremental`.
"""

from __future__ import annotations

import numpy as np

from cvs_tf.data.store import FeatureSet
from experiments.context import Context
from experiments.errors import ExperimentError
from experiments.incremental import (
    DIRECTIONS,
    PARTS,
    StagePlan,
    check_incremental,
    class_ranges,
    class_view,
    make_plan,
    part_label,
)
from experiments.kinds import Kind, register_kind
from experiments.report import (
    base_record,
    cell_text,
    figure_path,
    header_markdown,
    markdown_table,
    mean_sd,
    outputs,
)

COMPARISON = "cvs"  # the column key of the comparison model in the CSV rows


def evaluate_parts(ctx: Context, model, fs: FeatureSet, plan: StagePlan, mods) -> dict:
    """``{(protocol, part, direction): mAP}`` of one model on both evaluation sets (test split)."""
    from cvs_tf.evaluation.table import cross_modal_table

    out = {}
    for part, classes in (("part1", plan.part1), ("part2", plan.part2)):
        view = class_view(fs, classes, ("test",))
        for p in ctx.exp.protocols:
            df = cross_modal_table(model, split="test", k=ctx.exp.k, protocol=p, dataset=view, modalities=mods)
            for d, (q, r) in DIRECTIONS.items():
                out[(p, part, d)] = float(df.at[q, r])
    return out


def trained_labels(fs: FeatureSet, mods) -> dict[str, list[int]]:
    """Every label of the train and validation rows a trainer will see (recorded per stage)."""
    return {f"{m}/{s}": sorted(int(c) for c in np.unique(np.asarray(fs.y(m, s)))) for m in mods for s in ("train", "val")}


def run_stagewise(ctx: Context, data, plan: StagePlan, seed: int, fs: FeatureSet, mods) -> tuple[list[dict], list[dict]]:
    """Train the stage-wise model through every stage; evaluations after each stage and what each stage saw."""
    variant = ctx.exp.variants[0]
    weights = None
    evals, seen = [], []
    for s, classes in enumerate(plan.stages):
        view = class_view(fs, classes, ("train", "val"))
        labels = trained_labels(view, mods)
        later = {c for st in plan.stages[s + 1:] for c in st}
        leaked = sorted({c for v in labels.values() for c in v} & later)
        if leaked:  # cannot happen with class_view; a guard, not a result
            raise ExperimentError(f"stage {s + 1} would train on later-stage classes {leaked}")
        run_dir = ctx.run_root / data.spec.name / f"seed{seed}" / f"stage{s + 1}"
        tr = ctx.train(data, variant, seed, run_dir=run_dir, featureset=view, init_weights=weights)
        weights = tr.model.get_weights()
        evals.append(evaluate_parts(ctx, tr.model, fs, plan, mods))
        seen.append({"stage": s + 1, "classes": list(classes), "labels": labels, "wall_s": round(tr.wall_s, 1)})
    return evals, seen


def _keyed(evals: dict) -> dict:
    return {"|".join(k): v for k, v in evals.items()}


def _train_seeds(ctx: Context, data, inc, plan: StagePlan, fs: FeatureSet, mods):
    """Every seed's stage-wise evaluations, the comparison CVS's (when configured) and the run records."""
    exp = ctx.exp
    stage_vals, cvs_vals, runs = [], [], []
    for seed in ctx.seeds:
        evals, seen = run_stagewise(ctx, data, plan, seed, fs, mods)
        stage_vals.append(evals)
        rec = {"dataset": data.spec.name, "seed": seed, "stages": seen, "evaluations": [_keyed(e) for e in evals]}
        if inc.comparison and len(exp.variants) > 1:
            full = class_view(fs, plan.train_classes, ("train", "val"))
            run_dir = ctx.run_root / data.spec.name / f"seed{seed}" / "cvs-all-classes"
            tr = ctx.train(data, exp.variants[1], seed, run_dir=run_dir, featureset=full)
            cvs = evaluate_parts(ctx, tr.model, fs, plan, mods)
            cvs_vals.append(cvs)
            rec["comparison"] = _keyed(cvs)
        runs.append(rec)
    return stage_vals, cvs_vals, runs


def _row(exp, data, protocol, part, direction, column, values, thesis) -> dict:
    m, sd = mean_sd(values)
    return {"experiment": exp.name, "dataset": data.spec.name, "data_label": data.label, "protocol": protocol,
            "k": exp.k, "part": part, "direction": direction, "column": column, "mean": m,
            "std": sd if len(values) > 1 else None, "n_seeds": len(values),
            "thesis": thesis, "diff": None if thesis is None else m - thesis,
            "per_seed": ";".join(f"{x:.6f}" for x in values)}


def _protocol_table(exp, data, plan: StagePlan, p: str, stage_vals, cvs_vals, rows: list) -> list[str]:
    """The Markdown table of one protocol (parts × directions against stages); appends the CSV rows."""
    thesis_sw = data.spec.thesis.get(exp.variants[0].name, {})
    thesis_cvs = data.spec.thesis.get(exp.variants[1].name, {}) if len(exp.variants) > 1 else {}
    header = ["evaluated on", "direction"] + [f"stage {s + 1} (+{class_ranges(c)})" for s, c in enumerate(plan.stages)]
    if cvs_vals:
        header.append(f"{exp.variants[1].name}")
    table = []
    for part in PARTS:
        for d in DIRECTIONS:
            cols = [(f"stage{s + 1}", [sv[s] for sv in stage_vals], thesis_sw.get(f"{part}.{d}.s{s + 1}"))
                    for s in range(len(plan.stages))]
            if cvs_vals:
                cols.append((COMPARISON, cvs_vals, thesis_cvs.get(f"{part}.{d}")))
            cells = []
            for column, evals, thesis in cols:
                v = np.array([e[(p, part, d)] for e in evals])
                cells.append(cell_text(*mean_sd(v), thesis))
                rows.append(_row(exp, data, p, part, d, column, v, thesis))
            table.append([part_label(plan, part), d] + cells)
    return [f"#### protocol {p}, mAP@{exp.k}", "", markdown_table(header, table), ""]


def _figure(ctx: Context, data, plan: StagePlan, rows: list[dict], single: bool) -> list[str]:
    from experiments.plots import plot_incremental

    exp = ctx.exp
    path = figure_path(ctx, "" if single else f"-{data.spec.name}")
    data_rows = [r for r in rows if r["dataset"] == data.spec.name and r["protocol"] == exp.protocols[0]]
    plot_incremental(data_rows, len(plan.stages), path, title=f"{exp.title}\n{data.spec.label} ({data.label})",
                     labels={part: part_label(plan, part) for part in PARTS})
    return [f"![{exp.name} {data.spec.name}]({path.name})", ""]


def run_incremental(ctx: Context) -> dict:
    """Table 13: stage-wise class-incremental runs over seeds, plus the CVS on every training class."""
    exp = ctx.exp
    datas = [ctx.resolve(d) for d in exp.datasets]
    md = header_markdown(ctx, datas, [
        "stage-wise model: continues from the previous stage's weights with every weight trainable and sees only "
        "the current stage's classes (see experiments/incremental.py for the reading of thesis §3.4)",
        "each cell: our mean ± std over seeds / thesis / ours − thesis"])
    rows, runs, plans = [], [], []
    for data in datas:
        inc = exp.incremental_for(data.spec)
        mods = list(inc.modalities)
        fs = data.featureset().subset(mods)
        plan = make_plan(fs, inc)
        stage_vals, cvs_vals, seed_runs = _train_seeds(ctx, data, inc, plan, fs, mods)
        runs += seed_runs
        md += [f"### {data.spec.label} ({data.label})", ""]
        for p in exp.protocols:
            md += _protocol_table(exp, data, plan, p, stage_vals, cvs_vals, rows)
        plans.append({"dataset": data.spec.name, "stages": plan.stages, "part1": plan.part1, "part2": plan.part2,
                      "zero_shot": plan.zero_shot})
        if exp.options.get("figure") == "stages":
            md += _figure(ctx, data, plan, rows, len(datas) == 1)
    return outputs(md, rows, {**base_record(ctx, datas), "runs": runs, "plans": plans})


KIND = register_kind(Kind("incremental", run_incremental, evaluates=True, thesis_by_variant=True,
                          check=check_incremental))
