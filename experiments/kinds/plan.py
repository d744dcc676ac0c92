"""Kind ``plan`` (Table 12): the class-incremental stage plan and its two evaluation sets, computed from the data (no training)."""

from __future__ import annotations

from experiments.context import Context
from experiments.incremental import check_incremental, make_plan, plan_rows
from experiments.kinds import Kind, register_kind
from experiments.report import base_record, header_markdown, markdown_table, outputs

HEADER = ["stage", "trains on classes (1-based)", "train items", "val items", "evaluated on (part 1): test items",
          "evaluated on (part 2): test items", "thesis Table 12 (train / part 1 / part 2)"]


def _zero_shot_note(plan) -> list[str]:
    return [f"- zero-shot: the {len(plan.train_classes)} seen classes train, the {len(plan.part2)} unseen "
            "classes are the whole test set; the seen classes have no test items, so part 1 is the first "
            f"{len(plan.part1)} unseen classes (a choice: Table 13's row says '5 categories').", ""]


def run_plan(ctx: Context) -> dict:
    """Table 12: the stage plan and evaluation sets of every dataset."""
    exp = ctx.exp
    datas = [ctx.resolve(d) for d in exp.datasets]
    md = header_markdown(ctx, datas)
    rows, record_plans = [], []
    thesis_rows = exp.options.get("thesis_rows", {})
    for data in datas:
        inc = exp.incremental_for(data.spec)
        fs = data.featureset().subset(inc.modalities)
        plan = make_plan(fs, inc)
        prow = plan_rows(fs, plan, inc.modalities)
        trow = thesis_rows.get(data.spec.name, [])
        table = []
        for i, r in enumerate(prow):
            t = trow[i] if i < len(trow) else ["—"] * 3
            table.append([str(r["stage"]), r["train_classes"], r["train_items"], r["val_items"],
                          f"{r['part1']}: {r['part1_items']}", f"{r['part2']}: {r['part2_items']}",
                          " / ".join(t)])
            rows.append({"experiment": exp.name, "dataset": data.spec.name, "data_label": data.label,
                         **{k: v for k, v in r.items() if k != "classes"}, "thesis": " / ".join(t)})
        md += [f"### {data.spec.label} ({data.label})", "", markdown_table(HEADER, table), ""]
        if plan.zero_shot:
            md += _zero_shot_note(plan)
        record_plans.append({"dataset": data.spec.name, "stages": plan.stages, "part1": plan.part1,
                             "part2": plan.part2, "zero_shot": plan.zero_shot, "rows": prow})
    md += [f"- {n}" for n in exp.options.get("plan_notes", [])]
    return outputs(md, rows, {**base_record(ctx, datas), "plans": record_plans})


KIND = register_kind(Kind("plan", run_plan, trains=False, seeded=False, check=check_incremental))
