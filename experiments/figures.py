"""The thesis figures as experiments: 9 (space before/after, PCA), 22–24 (loss curves from TensorBoard), 25 (bars), 26 (blocks), 27 (ms/iteration).

Every figure is drawn with matplotlib's Agg backend into ``results/NAME*.png``, and its numbers
go into ``results/NAME.{md,csv,json}`` like every table.

* Figure 26 needs no data: the attention-block counts are analytic (CVS: C(n,2) blocks, all
  retrained when a modality is added; M-CVS: 1 + 2 + … + (n−1) blocks, of which the n−1 new ones
  train; RVS: n−1 blocks, one new) and counted from the built models' ``parameter_report``.
* Figure 27 times training iterations with the library Trainer and a Keras callback (the
  median wall time between consecutive ``on_train_batch_end`` calls, after the first epoch of
  each stage, which includes tracing/compilation), and adds the isolated-step numbers of the
  performance benchmark ``bench/growth.py`` as a cross-check when that module is present.
* Figures 22–24 read the scalars the Trainer logged (``loss/<name>`` under
  ``tensorboard/stage<k>-<name>/{train,validation}``) with TensorBoard's ``EventAccumulator``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.runner import (  # noqa: E402
    Context,
    base_record,
    figure_path,
    fmt,
    fmt_mean_std,
    header_markdown,
    markdown_table,
)
from experiments.spec import VariantSpec  # noqa: E402

MARKERS = ["o", "s", "^", "v", "D", "P", "X", "*", "<", ">"]


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


# --------------------------------------------------------------------------- simple plots


def plot_variant_bars(variants: list[dict], path: Path, *, title: str, k: int) -> Path:
    """Overall mean mAP per variant with ± std error bars (Figure 25 and the cross-modal tables)."""
    names = [v["variant"] for v in variants]
    means = [v["mean"] for v in variants]
    stds = [0.0 if (v["std"] is None or math.isnan(v["std"])) else v["std"] for v in variants]
    fig, ax = plt.subplots(figsize=(1.2 + 1.3 * len(names), 3.6))
    bars = ax.bar(range(len(names)), means, yerr=stds, capsize=4, color="#4c72b0")
    for b, m in zip(bars, means):
        ax.text(b.get_x() + b.get_width() / 2, m, f"{m:.3f}", ha="center", va="bottom", fontsize=8)
    for i, v in enumerate(variants):
        ax.scatter([i] * len(v["per_seed"]), v["per_seed"], color="k", s=8, zorder=3)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
    ax.set_ylabel(f"overall mean mAP@{k} (test)")
    ax.set_title(title, fontsize=9)
    ax.set_ylim(0, max(1e-3, max(means) + max(stds)) * 1.15)
    return _save(fig, path)


def plot_incremental(rows: list[dict], n_stages: int, path: Path, *, title: str, labels: dict) -> Path:
    """Table 13 as lines: mAP after each stage for both evaluation sets and directions; the CVS dashed."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    colors = {"part1": "#4c72b0", "part2": "#dd8452"}
    styles = {"i2t": "-", "t2i": ":"}
    x = np.arange(1, n_stages + 1)
    for part in ("part1", "part2"):
        for d in ("i2t", "t2i"):
            sel = {r["column"]: r for r in rows if r["part"] == part and r["direction"] == d}
            ys = [sel[f"stage{s}"]["mean"] for s in x]
            ax.plot(x, ys, styles[d], marker="o", color=colors[part], label=f"{labels[part][:40]} {d}")
            if "cvs" in sel:
                ax.axhline(sel["cvs"]["mean"], color=colors[part], ls=styles[d], lw=0.8, alpha=0.6)
    ax.set_xticks(x)
    ax.set_xlabel("after stage (thin lines: CVS on all training classes)")
    ax.set_ylabel("mAP (test)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path)


# --------------------------------------------------------------------------- Figure 26


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


def run_blocks(ctx: Context) -> dict:
    """Figure 26: attention blocks against the number of modalities, analytic and counted."""
    from cvs_tf.data.synthetic import DATASET_SPECS

    o = ctx.exp.options
    spec = DATASET_SPECS[o.get("dims_of", "xmedia")]
    order = o.get("modalities", list(spec.modalities))
    dims = {m: spec.modalities[m].dim for m in order}
    dim = int(ctx.exp.model.get("dim", 512))
    counted = counted_blocks(dims, spec.classes, dim, o.get("reference", "image"))
    rows, table = [], []
    mismatches = []
    for c in counted:
        a = analytic_blocks(c["n"])
        for key in a:
            if a[key] != c[key]:
                mismatches.append(f"n={c['n']} {key}: analytic {a[key]}, counted {c[key]}")
        rows.append({"experiment": ctx.exp.name, **{f"analytic_{k}": v for k, v in a.items()},
                     **{k: (", ".join(v) if isinstance(v, list) else v) for k, v in c.items()}})
        table.append([str(c["n"]), ", ".join(c["modalities"]),
                      f"{a['cvs_total']} / {c['cvs_total']}", f"{a['cvs_trained']} / {c['cvs_trained']}",
                      f"{a['mcvs_total']} / {c['mcvs_total']}", f"{a['mcvs_trained']} / {c['mcvs_trained']}",
                      f"{a['rvs_total']} / {c['rvs_total']}", f"{a['rvs_trained']} / {c['rvs_trained']}",
                      f"{c['cvs_trainable_params']:,}", f"{c['mcvs_trainable_params']:,}", f"{c['rvs_trainable_params']:,}"])
    md = header_markdown(ctx, [], [
        f"model dims: {', '.join(f'{m} {d}' for m, d in dims.items())} (the {spec.title} feature sizes), D = {dim}, "
        f"{spec.classes} classes; RVS reference: {o.get('reference', 'image')}",
        "each block cell: analytic / counted from the built model (`parameter_report`); 'trained' = blocks "
        "(and parameters) that train when the n-th modality is added: CVS retrains everything from scratch",
        "analytic and counted agree in every cell" if not mismatches else "MISMATCH: " + "; ".join(mismatches)])
    md += [markdown_table(["n", "modalities (M-CVS/CVS order)", "CVS blocks", "CVS trained", "M-CVS blocks",
                           "M-CVS trained", "RVS blocks", "RVS trained", "CVS trainable params",
                           "M-CVS trainable params", "RVS trainable params"], table), ""]
    path = figure_path(ctx)
    ns = [c["n"] for c in counted]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, what, label in ((axes[0], "total", "attention blocks in the model"),
                            (axes[1], "trained", "blocks trained when the n-th modality is added")):
        for key, name, color in (("cvs", "CVS", "#4c72b0"), ("mcvs", "M-CVS", "#dd8452"), ("rvs", "RVS", "#55a868")):
            ax.plot(ns, [analytic_blocks(n)[f"{key}_{what}"] for n in ns], "-", color=color, label=f"{name} (analytic)")
            ax.plot(ns, [c[f"{key}_{what}"] for c in counted], MARKERS[0], color=color, mfc="none", ms=9,
                    label=f"{name} (counted)")
        ax.set_xlabel("number of modalities n")
        ax.set_ylabel(label)
        ax.set_xticks(ns)
    axes[0].legend(fontsize=7)
    fig.suptitle(ctx.exp.title, fontsize=9, y=1.03)
    _save(fig, path)
    md += [f"![{ctx.exp.name}]({path.name})", ""]
    record = {**base_record(ctx, []), "rows": rows, "mismatches": mismatches}
    return {"markdown": "\n".join(md), "rows": rows, "record": record}


# --------------------------------------------------------------------------- Figure 27


class IterationTimer:
    """Keras callback recording wall time between consecutive training batches, per (stage, epoch)."""

    def __new__(cls):
        import keras

        class _Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.samples = []  # (stage, epoch, seconds)
                self._last = None
                self._epoch = 0

            def on_epoch_begin(self, epoch, logs=None):
                self._epoch, self._last = epoch, None

            def on_train_batch_end(self, batch, logs=None):
                now = time.perf_counter()
                if self._last is not None:
                    self.samples.append((int(self.model.current_stage), self._epoch, now - self._last))
                self._last = now

            def per_stage_ms(self, skip_epochs: int = 1) -> dict[int, list[float]]:
                out: dict[int, list[float]] = {}
                for stage, epoch, dt in self.samples:
                    if epoch >= skip_epochs:
                        out.setdefault(stage, []).append(1000.0 * dt)
                return out

        return _Timer()


def run_timing(ctx: Context) -> dict:
    """Figure 27: ms per training iteration against the number of modalities, CVS from scratch vs M-CVS."""
    exp, o = ctx.exp, ctx.exp.options
    data = ctx.resolve(exp.datasets[0])
    order = o.get("modalities", ["image", "text", "video", "audio", "3d"])
    base = {v.name: v for v in exp.variants}
    cvs_v, mcvs_v = base[o.get("cvs_variant", "CVS")], base[o.get("mcvs_variant", "M-CVS")]
    skip = int(o.get("skip_epochs", 1))
    rows, results = [], {"cvs": {}, "mcvs": {}}
    for seed in ctx.seeds:
        for n in range(2, len(order) + 1):
            v = VariantSpec(f"{cvs_v.name} n={n}", {**cvs_v.model, "modalities": order[:n]}, cvs_v.loss, cvs_v.train)
            timer = IterationTimer()
            ctx.train(data, v, seed, callbacks=[timer])
            ms = timer.per_stage_ms(skip).get(0, [])
            results["cvs"].setdefault(n, []).append(float(np.median(ms)) if ms else float("nan"))
        stages = [order[:2]] + [[m] for m in order[2:]]
        v = VariantSpec(mcvs_v.name, {**mcvs_v.model, "stages": stages}, mcvs_v.loss, mcvs_v.train)
        timer = IterationTimer()
        ctx.train(data, v, seed, callbacks=[timer])
        for stage, ms in timer.per_stage_ms(skip).items():
            results["mcvs"].setdefault(stage + 2, []).append(float(np.median(ms)))
    ns = list(range(2, len(order) + 1))
    table = []
    for n in ns:
        c, m = np.array(results["cvs"].get(n, [np.nan])), np.array(results["mcvs"].get(n, [np.nan]))
        sd = lambda a: float(a.std(ddof=1)) if len(a) > 1 else float("nan")  # noqa: E731
        rows.append({"experiment": exp.name, "n": n, "added": order[n - 1], "cvs_ms_median": float(c.mean()),
                     "cvs_ms_std": sd(c), "mcvs_ms_median": float(m.mean()), "mcvs_ms_std": sd(m),
                     "cvs_per_seed": ";".join(f"{x:.2f}" for x in c), "mcvs_per_seed": ";".join(f"{x:.2f}" for x in m)})
        table.append([str(n), order[n - 1], fmt_mean_std(float(c.mean()), sd(c), 1), fmt_mean_std(float(m.mean()), sd(m), 1),
                      fmt(float(m.mean() / c.mean()), 2)])
    md = header_markdown(ctx, [data], [
        "measured here with the library Trainer: the median wall time between consecutive training batches "
        f"(Keras callback), after the first {skip} epoch(s) of each stage (tracing/compilation); ± over seeds",
        "CVS n: a CVS trained from scratch on the first n modalities; M-CVS n: stage n−1 of one M-CVS run "
        f"(stage 1 = {order[0]}+{order[1]}, then +{', +'.join(order[2:])}), where only the new branch and its blocks train",
        "the machine is shared (2 CPU cores, other jobs running): absolute times are noisy, compare within a row"])
    md += [markdown_table(["n", "added modality", "CVS from scratch (ms/iteration)", "M-CVS stage (ms/iteration)",
                           "M-CVS / CVS"], table), ""]
    bench_md, bench_rows = bench_growth(ctx.quick) if o.get("bench", True) else ([], [])
    md += bench_md
    path = figure_path(ctx)
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    for key, name, color in (("cvs_ms_median", "CVS (retrained from scratch)", "#4c72b0"),
                             ("mcvs_ms_median", "M-CVS (only the new branch trains)", "#dd8452")):
        ax.plot(ns, [r[key] for r in rows], "-o", color=color, label=name)
    ax.set_xticks(ns, [f"{n}\n+{order[n - 1]}" if n > 2 else f"2\n{order[0]}+{order[1]}" for n in ns])
    ax.set_xlabel("number of modalities")
    ax.set_ylabel("ms per training iteration")
    ax.set_title(f"{exp.title}\n{data.spec.label} ({data.label})", fontsize=9)
    ax.legend(fontsize=8)
    _save(fig, path)
    md += [f"![{exp.name}]({path.name})", ""]
    record = {**base_record(ctx, [data]), "rows": rows, "order": order, "bench_growth": bench_rows}
    return {"markdown": "\n".join(md), "rows": rows, "record": record}


def bench_growth(quick: bool) -> tuple[list[str], list[dict]]:
    """The same measurement by the performance benchmark ``bench/growth.py`` (isolated train steps on a
    constant batch, interleaved rounds), when that module is importable; a note saying why when not."""
    try:
        from bench.growth import measure
    except ImportError as exc:
        return [f"- bench/growth.py not available ({exc}): only the Trainer measurement above", ""], []
    try:
        m = measure(quick)
        rows = [{"n": r["n"], "cvs_ms": 1e3 * r["cvs"]["median"], "mcvs_ms": 1e3 * r["mcvs"]["median"]}
                for r in m["rows"]]
    except Exception as exc:  # an optional cross-check: report it, never hide it, never fail the figure
        return [f"- bench/growth.py failed ({type(exc).__name__}: {exc}): only the Trainer measurement above", ""], []
    table = [[str(r["n"]), f"{r['cvs_ms']:.1f}", f"{r['mcvs_ms']:.1f}", fmt(r["mcvs_ms"] / r["cvs_ms"], 2)] for r in rows]
    return ["Cross-check with the performance benchmark `bench/growth.py` (isolated train steps on one constant "
            f"batch, interleaved rounds, its own settings: XLA mode `{m.get('mode')}`):", "",
            markdown_table(["n", "CVS (ms/iteration)", "M-CVS (ms/iteration)", "M-CVS / CVS"], table), ""], rows


# --------------------------------------------------------------------------- Figure 9


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


def run_projection(ctx: Context) -> dict:
    """Figure 9: the space before and after training, 2-D PCA of test embeddings (colour modality, marker class)."""
    import keras

    from cvs_tf.evaluation.table import cross_modal_table
    from cvs_tf.models import build_model

    exp, o = ctx.exp, ctx.exp.options
    data = ctx.resolve(exp.datasets[0])
    variant = exp.variants[0]
    seed = ctx.seeds[0]
    tr = ctx.train(data, variant, seed)
    fs, mods = tr.fs, list(tr.model.modalities)
    keras.utils.set_random_seed(tr.config.train.seed)  # the Trainer's own initialisation, untrained
    before = build_model(tr.config, fs)
    classes = list(range(min(int(o.get("classes", 6)), fs.num_classes)))
    picks = _sample(fs, mods, classes, int(o.get("per_class", 12)), seed)
    rows, stats = [], []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    colors = plt.get_cmap("tab10")
    for ax, (state, model) in zip(axes, (("before training", before), ("after training", tr.model))):
        embs, labels, mlist = [], [], []
        for m in mods:
            e = model.embed(m, np.asarray(fs.x(m, "test"))[picks[m]]).numpy()
            embs.append(e)
            labels.append(np.asarray(fs.y(m, "test"))[picks[m]])
            mlist += [m] * len(e)
        xy, explained = pca2(np.concatenate(embs))
        y = np.concatenate(labels)
        table = cross_modal_table(model, split="test", k=exp.k, dataset=fs, modalities=mods)
        stats.append({"state": state, "overall_map": float(table.attrs["overall_mean"]), "pca_explained": explained})
        for i, m in enumerate(mods):
            for j, c in enumerate(classes):
                sel = (np.asarray(mlist) == m) & (y == c)
                ax.scatter(xy[sel, 0], xy[sel, 1], color=colors(i), marker=MARKERS[j % len(MARKERS)], s=22,
                           alpha=0.8, edgecolors="none")
        for (px, py), m, c in zip(xy, mlist, y):
            rows.append({"experiment": exp.name, "state": state, "modality": m, "class": fs.classes[int(c)],
                         "pc1": float(px), "pc2": float(py)})
        ax.set_title(f"{state}: mAP@{exp.k} {stats[-1]['overall_map']:.3f}; PCA explains {100 * explained:.0f}%",
                     fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colors(i), marker="o", ls="", label=m) for i, m in enumerate(mods)]
    handles += [Line2D([], [], color="grey", marker=MARKERS[j % len(MARKERS)], ls="", label=fs.classes[c])
                for j, c in enumerate(classes)]
    axes[1].legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"{exp.title}\n{data.spec.label} ({data.label})", fontsize=9, y=1.04)
    path = figure_path(ctx)
    _save(fig, path)
    md = header_markdown(ctx, [data], [
        f"{variant.name}, seed {seed}; 'before' is the same model at its seeded initialisation (untrained); "
        f"each panel is its own PCA of up to {o.get('per_class', 12)} test items per (modality, class) of the first "
        f"{len(classes)} classes; the mAP is over the whole test split"])
    md += [markdown_table(["state", f"overall mAP@{exp.k} (test, independent)", "variance explained by 2 PCs"],
                          [[s["state"], fmt(s["overall_map"]), f"{100 * s['pca_explained']:.1f}%"] for s in stats]), "",
           f"![{exp.name}]({path.name})", ""]
    record = {**base_record(ctx, [data]), "stats": stats, "run_dir": str(tr.run_dir)}
    return {"markdown": "\n".join(md), "rows": rows, "record": record}


# --------------------------------------------------------------------------- Figures 22–24


def read_scalars(run_dir: str | Path) -> list[dict]:
    """Every scalar the Trainer logged, as rows (stage, stage_name, split, tag, step, value), via EventAccumulator."""
    from tensorboard.backend.event_processing.event_accumulator import TENSORS, EventAccumulator
    from tensorboard.util import tensor_util

    rows = []
    root = Path(run_dir) / "tensorboard"
    for stage_dir in sorted(root.glob("stage*"), key=lambda p: int(p.name[5:].split("-", 1)[0])):
        stage = int(stage_dir.name[5:].split("-", 1)[0])
        for split_dir in sorted(p for p in stage_dir.iterdir() if p.is_dir()):
            acc = EventAccumulator(str(split_dir), size_guidance={TENSORS: 0})
            acc.Reload()
            for tag in acc.Tags().get("tensors", []):
                for ev in acc.Tensors(tag):
                    rows.append({"stage": stage, "stage_name": stage_dir.name[5:], "split": split_dir.name,
                                 "tag": tag, "step": int(ev.step),
                                 "value": float(tensor_util.make_ndarray(ev.tensor_proto))})
    return rows


def with_global_epoch(rows: list[dict]) -> tuple[list[dict], list[int]]:
    """Add ``epoch`` counted across stages (stage k starts after stage k-1's last epoch); stage starts."""
    last = {}
    for r in rows:
        last[r["stage"]] = max(last.get(r["stage"], 0), r["step"])
    offsets, total = {}, 0
    for s in sorted(last):
        offsets[s] = total
        total += last[s]
    return [{**r, "epoch": r["step"] + offsets[r["stage"]]} for r in rows], [offsets[s] for s in sorted(offsets)]


def plot_loss(rows: list[dict], tag: str, path: Path, *, title: str, starts: list[int]) -> Path:
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    for split, color in (("train", "#4c72b0"), ("validation", "#dd8452")):
        sel = sorted((r["epoch"], r["value"]) for r in rows if r["tag"] == tag and r["split"] == split)
        if sel:
            ax.plot(*zip(*sel), "-o", ms=3, color=color, label=split)
    for s in starts[1:]:
        ax.axvline(s + 0.5, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("epoch (stages concatenated; dashed: a new stage starts)" if len(starts) > 1 else "epoch")
    ax.set_ylabel(tag)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return _save(fig, path)


def run_loss_curves(ctx: Context) -> dict:
    """Figures 22–24: loss curves of a CVS (total), an M-CVS (metric) and an RVS (category), from TensorBoard."""
    exp = ctx.exp
    data = ctx.resolve(exp.datasets[0])
    seed = ctx.seeds[0]
    figs = exp.options.get("figures", {})
    md = header_markdown(ctx, [data], [f"one run per model (seed {seed}); curves read back from the run's TensorBoard "
                                       "event files with tensorboard's EventAccumulator"])
    rows, table = [], []
    for fig_name, f in figs.items():
        variant = exp.variant(f["variant"])
        tr = ctx.train(data, variant, seed, run_dir=ctx.run_root / data.spec.name / fig_name)
        scal, starts = with_global_epoch(read_scalars(tr.run_dir))
        rows += [{"experiment": exp.name, "figure": fig_name, "variant": variant.name, **r} for r in scal]
        tag = f["tag"]
        path = figure_path(ctx, f"-{fig_name}")
        plot_loss(scal, tag, path, title=f"{f.get('title', fig_name)} — {variant.name}\n{data.spec.label} ({data.label})",
                  starts=starts)
        tr_vals = [r["value"] for r in sorted(scal, key=lambda r: r["epoch"]) if r["tag"] == tag and r["split"] == "train"]
        va_vals = [r["value"] for r in sorted(scal, key=lambda r: r["epoch"]) if r["tag"] == tag and r["split"] == "validation"]
        table.append([fig_name, variant.name, f"`{tag}`", str(len(starts)), str(len(tr_vals)),
                      fmt(tr_vals[0] if tr_vals else None), fmt(tr_vals[-1] if tr_vals else None),
                      fmt(min(va_vals) if va_vals else None)])
        md_fig = f"![{fig_name}]({path.name})"
        table[-1].append(md_fig)
    md += [markdown_table(["figure", "model", "TensorBoard tag", "stages", "epochs", "first train value",
                           "last train value", "best validation value", "plot"], table), ""]
    record = {**base_record(ctx, [data]), "figures": figs}
    return {"markdown": "\n".join(md), "rows": rows, "record": record}


__all__ = ["analytic_blocks", "counted_blocks", "pca2", "read_scalars", "with_global_epoch", "plot_variant_bars",
           "plot_incremental", "run_blocks", "run_timing", "run_projection", "run_loss_curves"]
