"""Kind ``blocks`` (Figure 26): attention blocks against the number of modalities, analytic and counted from built models (no data, no training).

CVS: C(n,2) blocks, all retrained when a modality is added; M-CVS: 1 + 2 + … + (n−1) blocks, of
which the n−1 new ones train; RVS: n−1 blocks, one new.
"""

from __future__ import annotations

import math

from experiments.context import Context
from experiments.errors import SpecError
from experiments.kinds import Kind, register_kind
from experiments.report import base_record, figure_path, header_markdown, markdown_table, outputs

HEADER = ["n", "modalities (M-CVS/CVS order)", "CVS blocks", "CVS trained", "M-CVS blocks", "M-CVS trained",
          "RVS blocks", "RVS trained", "CVS trainable params", "M-CVS trainable params", "RVS trainable params"]
MODELS = (("cvs", "CVS", "#4c72b0"), ("mcvs", "M-CVS", "#dd8452"), ("rvs", "RVS", "#55a868"))


def analytic_blocks(n: int) -> dict:
    """Attention blocks with n modalities: in the model, and trained when the n-th modality is added."""
    return {"cvs_total": math.comb(n, 2), "cvs_trained": math.comb(n, 2),
            "mcvs_total": sum(range(1, n)), "mcvs_trained": n - 1,
            "rvs_total": n - 1, "rvs_trained": 1}


def counted_blocks(modality_dims: dict, num_classes: int, dim: int, reference: str) -> list[dict]:
    """The same numbers counted from built models (``parameter_report`` per stage), n = 2 … len(dims)."""
    from cvs_tf.models import CVSModel, MCVSModel, RVSModel

    mods = list(modality_dims)
    rows = []
    stages = [mods[:2]] + [[m] for m in mods[2:]]
    mcvs = MCVSModel(modality_dims, num_classes, stages=stages, dim=dim)
    others = [m for m in mods if m != reference]
    rvs_order = [reference] + others
    rvs = RVSModel({m: modality_dims[m] for m in rvs_order}, num_classes, reference=reference,
                   stages=[[reference, others[0]]] + [[m] for m in others[1:]], dim=dim)
    prev = {"mcvs": 0, "rvs": 0}
    for n in range(2, len(mods) + 1):
        cvs = CVSModel({m: modality_dims[m] for m in mods[:n]}, num_classes, dim=dim)
        c = cvs.parameter_report()
        row = {"n": n, "modalities": mods[:n], "cvs_total": c["attention_blocks"], "cvs_trained": c["attention_blocks"],
               "cvs_trainable_params": c["trainable_params"]}
        for key, model in (("mcvs", mcvs), ("rvs", rvs)):
            model.set_stage(n - 2, recompile=False)
            r = model.parameter_report()
            row[f"{key}_total"] = r["attention_blocks"]
            row[f"{key}_trained"] = r["attention_blocks"] - prev[key]
            row[f"{key}_trainable_params"] = r["trainable_params"]
            row[f"{key}_frozen_params"] = r["frozen_params"]
            prev[key] = r["attention_blocks"]
        row["rvs_modalities"] = rvs.modalities
        rows.append(row)
        del cvs
    return rows


def _table_row(a: dict, c: dict) -> list[str]:
    cells = [f"{a[f'{key}_{what}']} / {c[f'{key}_{what}']}" for key, _, _ in MODELS for what in ("total", "trained")]
    return ([str(c["n"]), ", ".join(c["modalities"])] + cells
            + [f"{c[f'{key}_trainable_params']:,}" for key, _, _ in MODELS])


def _plot(ctx: Context, counted: list[dict]):
    import matplotlib.pyplot as plt

    from experiments.plots import MARKERS, save

    path = figure_path(ctx)
    ns = [c["n"] for c in counted]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, what, label in ((axes[0], "total", "attention blocks in the model"),
                            (axes[1], "trained", "blocks trained when the n-th modality is added")):
        for key, name, color in MODELS:
            ax.plot(ns, [analytic_blocks(n)[f"{key}_{what}"] for n in ns], "-", color=color, label=f"{name} (analytic)")
            ax.plot(ns, [c[f"{key}_{what}"] for c in counted], MARKERS[0], color=color, mfc="none", ms=9,
                    label=f"{name} (counted)")
        ax.set_xlabel("number of modalities n")
        ax.set_ylabel(label)
        ax.set_xticks(ns)
    axes[0].legend(fontsize=7)
    fig.suptitle(ctx.exp.title, fontsize=9, y=1.03)
    return save(fig, path)


def run_blocks(ctx: Context) -> dict:
    """Figure 26: the analytic counts beside the counted ones, as a table and a two-panel plot."""
    from cvs_tf.data.synthetic import DATASET_SPECS

    o = ctx.exp.options
    spec = DATASET_SPECS[o["dims_of"]]
    order = o.get("modalities", list(spec.modalities))
    dims = {m: spec.modalities[m].dim for m in order}
    dim = int(ctx.exp.model.get("dim", 512))
    reference = o.get("reference", "image")
    counted = counted_blocks(dims, spec.classes, dim, reference)
    rows, table, mismatches = [], [], []
    for c in counted:
        a = analytic_blocks(c["n"])
        mismatches += [f"n={c['n']} {key}: analytic {a[key]}, counted {c[key]}" for key in a if a[key] != c[key]]
        rows.append({"experiment": ctx.exp.name, **{f"analytic_{k}": v for k, v in a.items()},
                     **{k: (", ".join(v) if isinstance(v, list) else v) for k, v in c.items()}})
        table.append(_table_row(a, c))
    md = header_markdown(ctx, [], [
        f"model dims: {', '.join(f'{m} {d}' for m, d in dims.items())} (the {spec.title} feature sizes), D = {dim}, "
        f"{spec.classes} classes; RVS reference: {reference}",
        "each block cell: analytic / counted from the built model (`parameter_report`); 'trained' = blocks "
        "(and parameters) that train when the n-th modality is added: CVS retrains everything from scratch",
        "analytic and counted agree in every cell" if not mismatches else "MISMATCH: " + "; ".join(mismatches)])
    md += [markdown_table(HEADER, table), ""]
    path = _plot(ctx, counted)
    md += [f"![{ctx.exp.name}]({path.name})", ""]
    return outputs(md, rows, {**base_record(ctx, []), "rows": rows, "mismatches": mismatches})


def check_blocks(spec, where: str) -> None:
    """Spec check: ``options.dims_of`` names a dataset with a synthetic spec (its feature sizes are used)."""
    from cvs_tf.data.synthetic import DATASET_SPECS

    name = spec.options.get("dims_of")
    if name not in DATASET_SPECS:
        raise SpecError(f"{where}: options.dims_of must be one of {', '.join(DATASET_SPECS)}, got {name!r}")


KIND = register_kind(Kind("blocks", run_blocks, trains=False, seeded=False, figure=True, check=check_blocks))
