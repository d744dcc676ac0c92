"""Stage-wise class-incremental learning (thesis §3.4, Tables 12–13): class views of a feature set, the stage plan and its two evaluation sets.

Protocol (thesis §3.4 and §5.1.F; the choices the thesis leaves open are marked *choice*):

* The training classes are cut, in class-id order, into groups: Pascal 5/5/5/5 of its 20
  classes; CUB (zero-shot) 40/40/40/30 of its 150 seen classes.
* Stage ``s`` trains an image+text space on the train and validation items of group ``s`` only
  (a :func:`class_view` of the feature set: the rows of the other classes are not in it, so no
  batch can ever hold a later stage's class). Early stopping and the choice of the best epoch
  use that stage's validation items; the test split is never used for either.
* *Choice:* stage ``s + 1`` continues from the weights stage ``s`` ended with, and **every
  weight stays trainable** (branches, attention block, classifier); a fresh Adam per stage.
  The thesis "use[s] the model from the previous stage and add[s] new class information to the
  network by training it for these additional new classes" and reports the stage-1 classes'
  scores *falling* across stages, which frozen weights could not produce; "do not fine-tune the
  model for the previously existing stages" we read as: the earlier classes' data is not
  revisited (no replay). The loss is "calculated with respect to the K categories that are being
  added": the shared classifier keeps all its outputs, but only the stage's classes appear.
* After every stage the model is evaluated (test split, i2t and t2i mAP@K) on two sets
  (Table 12): part 1 -- the test items of the stage-1 classes (both the queries and the
  retrieval set); part 2 -- the entire test set. CUB is zero-shot: its test set holds only the
  50 unseen classes, so the stage-1 (seen) classes have no test items; *choice:* part 1 is the
  test items of the first 5 unseen classes (Table 13's row says "5 categories"), part 2 all 50.
* The comparison column is a CVS trained in one go on every training class, evaluated on the
  same two sets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from cvs_tf.data.store import FeatureSet, FeatureSetError
from experiments.runner import (
    Context,
    ExperimentError,
    base_record,
    cell_text,
    header_markdown,
    markdown_table,
)
from experiments.spec import IncrementalSpec

DIRECTIONS = {"i2t": ("image", "text"), "t2i": ("text", "image")}
PARTS = ("part1", "part2")


# --------------------------------------------------------------------------- class views


def class_mask(y: np.ndarray, classes) -> np.ndarray:
    """Rows whose (single) label is one of ``classes``."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise FeatureSetError("class-incremental views need single-label data (got multi-hot labels)")
    return np.isin(y, np.asarray(list(classes), dtype=y.dtype))


def class_view(fs: FeatureSet, classes, splits=("train", "val")) -> FeatureSet:
    """A feature set holding, in ``splits``, only the rows of ``classes`` (other splits unchanged).

    Instance-paired sets keep their pairing: every modality of an item has the same label, so the
    same rows survive in each. The manifest's counts are updated and ``class_view`` records what
    was kept.
    """
    classes = sorted(int(c) for c in classes)
    manifest = json.loads(json.dumps(fs.manifest))
    arrays = dict(fs.arrays)
    for (m, s), (x, y) in fs.arrays.items():
        if s in splits:
            keep = class_mask(y, classes)
            arrays[(m, s)] = (np.asarray(x)[keep], np.asarray(y)[keep])
            manifest["modalities"][m]["counts"][s] = int(keep.sum())
    manifest["class_view"] = {"classes": classes, "splits": list(splits)}
    return FeatureSet(fs.path, manifest, arrays)


# --------------------------------------------------------------------------- the plan


@dataclass
class StagePlan:
    """Classes trained per stage and the classes of the two evaluation sets."""

    stages: list[list[int]]
    part1: list[int]
    part2: list[int]
    train_classes: list[int]
    zero_shot: bool
    part1_rule: str


def training_classes(fs: FeatureSet, modalities) -> list[int]:
    """The zero-shot 'seen' classes if the set declares them, else every class with training items."""
    zs = fs.manifest.get("zero_shot") or {}
    if zs.get("seen"):
        return sorted(int(c) for c in zs["seen"])
    present = set()
    for m in modalities:
        present |= {int(c) for c in np.unique(np.asarray(fs.y(m, "train")))}
    return sorted(present)


def test_classes(fs: FeatureSet, modalities) -> list[int]:
    present = set()
    for m in modalities:
        present |= {int(c) for c in np.unique(np.asarray(fs.y(m, "test")))}
    return sorted(present)


def make_plan(fs: FeatureSet, inc: IncrementalSpec) -> StagePlan:
    """Cut the training classes into stages (in class-id order) and pick the two evaluation sets."""
    mods = list(inc.modalities)
    train = training_classes(fs, mods)
    if inc.stage_sizes is not None:
        sizes = list(inc.stage_sizes)
    else:
        base, extra = divmod(len(train), inc.n_stages)
        sizes = [base + (1 if i < extra else 0) for i in range(inc.n_stages)]
    if sum(sizes) != len(train) or min(sizes) < 1:
        raise ExperimentError(f"{fs.name}: stage sizes {sizes} do not cover its {len(train)} training classes")
    bounds = np.cumsum([0] + sizes)
    stages = [train[bounds[i]:bounds[i + 1]] for i in range(len(sizes))]
    tests = test_classes(fs, mods)
    zero_shot = not set(tests) & set(train)
    if inc.part1 == "stage1":
        part1 = [c for c in stages[0] if c in set(tests)]
        if not part1:
            raise ExperimentError(f"{fs.name}: the stage-1 classes have no test items (zero-shot set? use "
                                  "part1 = first_test_classes)")
    else:
        part1 = tests[: inc.part1_count]
    return StagePlan(stages, part1, tests, train, zero_shot, inc.part1)


def class_ranges(classes) -> str:
    """1-based class ids as compact ranges, the thesis's way: ``1–5``, ``1–3, 7``."""
    ids = sorted(int(c) + 1 for c in classes)
    out, start = [], None
    for i, c in enumerate(ids):
        if start is None:
            start = c
        if i + 1 == len(ids) or ids[i + 1] != c + 1:
            out.append(f"{start}–{c}" if c != start else f"{c}")
            start = None
    return ", ".join(out)


def part_label(plan: StagePlan, part: str) -> str:
    if part == "part2":
        return f"entire test set ({len(plan.part2)} {'unseen ' if plan.zero_shot else ''}classes: {class_ranges(plan.part2)})"
    if plan.part1_rule == "stage1":
        return f"stage-1 classes ({class_ranges(plan.part1)})"
    return f"first {len(plan.part1)} {'unseen ' if plan.zero_shot else 'test '}classes ({class_ranges(plan.part1)})"


def _counts(fs: FeatureSet, mods, split: str) -> str:
    return ", ".join(f"{m} {fs.count(m, split)}" for m in mods)


def plan_rows(fs: FeatureSet, plan: StagePlan, mods) -> list[dict]:
    """One row per stage: trained classes, train/val items, and the items of both evaluation sets."""
    rows = []
    p1 = class_view(fs, plan.part1, ("test",))
    p2 = class_view(fs, plan.part2, ("test",))
    for s, classes in enumerate(plan.stages):
        view = class_view(fs, classes, ("train", "val"))
        rows.append({
            "stage": s + 1, "train_classes": class_ranges(classes), "n_classes": len(classes),
            "train_items": _counts(view, mods, "train"), "val_items": _counts(view, mods, "val"),
            "part1": part_label(plan, "part1"), "part1_items": _counts(p1, mods, "test"),
            "part2": part_label(plan, "part2"), "part2_items": _counts(p2, mods, "test"),
            "classes": list(classes),
        })
    return rows


# --------------------------------------------------------------------------- Table 12: the plan


def run_plan(ctx: Context) -> dict:
    """Table 12: the stage plan and evaluation sets, computed from the data (no training)."""
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
        md += [f"### {data.spec.label} ({data.label})", "",
               markdown_table(["stage", "trains on classes (1-based)", "train items", "val items",
                               "evaluated on (part 1): test items", "evaluated on (part 2): test items",
                               "thesis Table 12 (train / part 1 / part 2)"], table), ""]
        if plan.zero_shot:
            md += [f"- zero-shot: the {len(plan.train_classes)} seen classes train, the {len(plan.part2)} unseen "
                   "classes are the whole test set; the seen classes have no test items, so part 1 is the first "
                   f"{len(plan.part1)} unseen classes (a choice: Table 13's row says '5 categories').", ""]
        record_plans.append({"dataset": data.spec.name, "stages": plan.stages, "part1": plan.part1,
                             "part2": plan.part2, "zero_shot": plan.zero_shot, "rows": prow})
    md += [f"- {n}" for n in exp.options.get("plan_notes", [])]
    return {"markdown": "\n".join(md), "rows": rows, "record": {**base_record(ctx, datas), "plans": record_plans}}



# --------------------------------------------------------------------------- Table 13: the runs


def _evaluate_parts(ctx: Context, model, fs: FeatureSet, plan: StagePlan, mods) -> dict:
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
        evals.append(_evaluate_parts(ctx, tr.model, fs, plan, mods))
        seen.append({"stage": s + 1, "classes": list(classes), "labels": labels, "wall_s": round(tr.wall_s, 1)})
    return evals, seen


def run_incremental(ctx: Context) -> dict:
    """Table 13: stage-wise class-incremental runs over seeds, plus the CVS on every training class."""
    exp = ctx.exp
    datas = [ctx.resolve(d) for d in exp.datasets]
    md = header_markdown(ctx, datas, [
        "stage-wise model: continues from the previous stage's weights with every weight trainable and sees only "
        "the current stage's classes (see experiments/incremental.py for the reading of thesis §3.4)",
        "each cell: our mean ± std over seeds / thesis / ours − thesis"])
    rows, runs, plots = [], [], []
    for data in datas:
        inc = exp.incremental_for(data.spec)
        mods = list(inc.modalities)
        fs = data.featureset().subset(mods)
        plan = make_plan(fs, inc)
        stage_vals: list[list[dict]] = []
        cvs_vals: list[dict] = []
        for seed in ctx.seeds:
            evals, seen = run_stagewise(ctx, data, plan, seed, fs, mods)
            stage_vals.append(evals)
            rec = {"dataset": data.spec.name, "seed": seed, "stages": seen,
                   "evaluations": [{"|".join(k): v for k, v in e.items()} for e in evals]}
            if inc.comparison and len(exp.variants) > 1:
                full = class_view(fs, plan.train_classes, ("train", "val"))
                run_dir = ctx.run_root / data.spec.name / f"seed{seed}" / "cvs-all-classes"
                tr = ctx.train(data, exp.variants[1], seed, run_dir=run_dir, featureset=full)
                cvs = _evaluate_parts(ctx, tr.model, fs, plan, mods)
                cvs_vals.append(cvs)
                rec["comparison"] = {"|".join(k): v for k, v in cvs.items()}
            runs.append(rec)
        thesis_sw = data.spec.thesis.get(exp.variants[0].name, {})
        thesis_cvs = data.spec.thesis.get(exp.variants[1].name, {}) if len(exp.variants) > 1 else {}
        n_st = len(plan.stages)
        md += [f"### {data.spec.label} ({data.label})", ""]
        for p in exp.protocols:
            header = ["evaluated on", "direction"] + [
                f"stage {s + 1} (+{class_ranges(c)})" for s, c in enumerate(plan.stages)]
            if cvs_vals:
                header.append(f"{exp.variants[1].name}")
            table = []
            for part in PARTS:
                for d in DIRECTIONS:
                    cells = []
                    for s in range(n_st):
                        v = np.array([sv[s][(p, part, d)] for sv in stage_vals])
                        m, sd = float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan")
                        key = f"{part}.{d}.s{s + 1}"
                        cells.append(cell_text(m, sd, thesis_sw.get(key)))
                        rows.append(_row(exp, data, p, part, d, f"stage{s + 1}", v, thesis_sw.get(key)))
                    if cvs_vals:
                        v = np.array([cv[(p, part, d)] for cv in cvs_vals])
                        m, sd = float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan")
                        key = f"{part}.{d}"
                        cells.append(cell_text(m, sd, thesis_cvs.get(key)))
                        rows.append(_row(exp, data, p, part, d, "cvs", v, thesis_cvs.get(key)))
                    table.append([part_label(plan, part), d] + cells)
            md += [f"#### protocol {p}, mAP@{exp.k}", "", markdown_table(header, table), ""]
        plots.append((data, plan))
        if exp.options.get("figure") == "stages":
            from experiments.figures import plot_incremental
            from experiments.runner import figure_path

            path = figure_path(ctx, "" if len(datas) == 1 else f"-{data.spec.name}")
            data_rows = [r for r in rows if r["dataset"] == data.spec.name and r["protocol"] == exp.protocols[0]]
            plot_incremental(data_rows, n_st, path, title=f"{exp.title}\n{data.spec.label} ({data.label})",
                             labels={part: part_label(plan, part) for part in PARTS})
            md += [f"![{exp.name} {data.spec.name}]({path.name})", ""]
    record = {**base_record(ctx, datas), "runs": runs,
              "plans": [{"dataset": d.spec.name, "stages": pl.stages, "part1": pl.part1, "part2": pl.part2,
                         "zero_shot": pl.zero_shot} for d, pl in plots]}
    return {"markdown": "\n".join(md), "rows": rows, "record": record}


def _row(exp, data, protocol, part, direction, column, values, thesis) -> dict:
    m = float(values.mean())
    return {"experiment": exp.name, "dataset": data.spec.name, "data_label": data.label, "protocol": protocol,
            "k": exp.k, "part": part, "direction": direction, "column": column, "mean": m,
            "std": float(values.std(ddof=1)) if len(values) > 1 else None, "n_seeds": len(values),
            "thesis": thesis, "diff": None if thesis is None else m - thesis,
            "per_seed": ";".join(f"{x:.6f}" for x in values)}


__all__ = ["class_view", "class_mask", "make_plan", "StagePlan", "plan_rows", "run_plan", "run_incremental",
           "run_stagewise", "class_ranges"]
