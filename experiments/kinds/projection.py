"""Kind ``projection`` (Figure 9): the space before and after training, a 2-D PCA of test embeddings (colour modality, marker class)."""

from __future__ import annotations

import numpy as np

from experiments import report
from experiments.context import Context
from experiments.kinds import Kind, register_kind


def pca2(x: np.ndarray) -> tuple[np.ndarray, float]:
    """First two principal components of the rows of x, and the variance fraction they explain."""
    xc = x - x.mean(0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    var = s ** 2
    return xc @ vt[:2].T, float(var[:2].sum() / var.sum())


def _sample(fs, mods, classes, per_class: int, seed: int):
    rng = np.random.default_rng(seed)
    picks = {}
    for m in mods:
        y = np.asarray(fs.y(m, "test"))
        idx = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per_class] for c in classes])
        picks[m] = np.sort(idx)
    return picks


def _panel(ax, ctx: Context, state: str, model, fs, mods, classes, picks, rows: list) -> dict:
    """One panel: the PCA of the picked test embeddings of ``model``; appends the CSV rows, returns its stats."""
    import matplotlib.pyplot as plt

    from cvs_tf.evaluation.table import cross_modal_table
    from experiments.plots import MARKERS

    exp = ctx.exp
    embs, labels, mlist = [], [], []
    for m in mods:
        e = model.embed(m, np.asarray(fs.x(m, "test"))[picks[m]]).numpy()
        embs.append(e)
        labels.append(np.asarray(fs.y(m, "test"))[picks[m]])
        mlist += [m] * len(e)
    xy, explained = pca2(np.concatenate(embs))
    y = np.concatenate(labels)
    table = cross_modal_table(model, split="test", k=exp.k, dataset=fs, modalities=mods)
    stats = {"state": state, "overall_map": float(table.attrs["overall_mean"]), "pca_explained": explained}
    colors = plt.get_cmap("tab10")
    for i, m in enumerate(mods):
        for j, c in enumerate(classes):
            sel = (np.asarray(mlist) == m) & (y == c)
            ax.scatter(xy[sel, 0], xy[sel, 1], color=colors(i), marker=MARKERS[j % len(MARKERS)], s=22,
                       alpha=0.8, edgecolors="none")
    for (px, py), m, c in zip(xy, mlist, y):
        rows.append({"experiment": exp.name, "state": state, "modality": m, "class": fs.classes[int(c)],
                     "pc1": float(px), "pc2": float(py)})
    ax.set_title(f"{state}: mAP@{exp.k} {stats['overall_map']:.3f}; PCA explains {100 * explained:.0f}%", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return stats


def _legend(ax, fs, mods, classes) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from experiments.plots import MARKERS

    colors = plt.get_cmap("tab10")
    handles = [Line2D([], [], color=colors(i), marker="o", ls="", label=m) for i, m in enumerate(mods)]
    handles += [Line2D([], [], color="grey", marker=MARKERS[j % len(MARKERS)], ls="", label=fs.classes[c])
                for j, c in enumerate(classes)]
    ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))


def run_projection(ctx: Context) -> dict:
    """Figure 9: one run; the same model at its seeded initialisation beside the trained one."""
    import keras
    import matplotlib.pyplot as plt

    from cvs_tf.models import build_model
    from experiments.plots import save

    exp, o = ctx.exp, ctx.exp.options
    data = ctx.resolve(exp.datasets[0])
    variant, seed = exp.variants[0], ctx.seeds[0]
    tr = ctx.train(data, variant, seed)
    fs, mods = tr.fs, list(tr.model.modalities)
    keras.utils.set_random_seed(tr.config.train.seed)  # the Trainer's own initialisation, untrained
    before = build_model(tr.config, fs)
    classes = list(range(min(int(o.get("classes", 6)), fs.num_classes)))
    picks = _sample(fs, mods, classes, int(o.get("per_class", 12)), seed)
    rows = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    stats = [_panel(ax, ctx, state, model, fs, mods, classes, picks, rows)
             for ax, (state, model) in zip(axes, (("before training", before), ("after training", tr.model)))]
    _legend(axes[1], fs, mods, classes)
    fig.suptitle(f"{exp.title}\n{data.spec.label} ({data.label})", fontsize=9, y=1.04)
    path = save(fig, report.figure_path(ctx))
    md = report.header_markdown(ctx, [data], [
        f"{variant.name}, seed {seed}; 'before' is the same model at its seeded initialisation (untrained); "
        f"each panel is its own PCA of up to {o.get('per_class', 12)} test items per (modality, class) of the first "
        f"{len(classes)} classes; the mAP is over the whole test split"])
    md += [report.markdown_table(["state", f"overall mAP@{exp.k} (test, independent)", "variance explained by 2 PCs"],
                          [[s["state"], report.fmt(s["overall_map"]), f"{100 * s['pca_explained']:.1f}%"] for s in stats]), "",
           f"![{exp.name}]({path.name})", ""]
    return report.outputs(md, rows, {**report.base_record(ctx, [data]), "stats": stats, "run_dir": str(tr.run_dir)})


KIND = register_kind(Kind("projection", run_projection, evaluates=True, figure=True))
