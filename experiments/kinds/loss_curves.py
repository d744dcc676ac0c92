"""Kind ``loss_curves`` (Figures 22–24): loss curves of a CVS, an M-CVS and an RVS, read back from the runs' TensorBoard event files.

The Trainer logs ``loss/<name>`` under ``tensorboard/stage<k>-<name>/{train,validation}``;
they are read with TensorBoard's ``EventAccumulator``.
"""

from __future__ import annotations

from pathlib import Path

from experiments.context import Context
from experiments.kinds import Kind, register_kind
from experiments.report import (
    base_record,
    figure_path,
    fmt,
    header_markdown,
    markdown_table,
    outputs,
)

HEADER = ["figure", "model", "TensorBoard tag", "stages", "epochs", "first train value", "last train value",
          "best validation value", "plot"]


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
    import matplotlib.pyplot as plt

    from experiments.plots import save

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
    return save(fig, path)


def _values(scal: list[dict], tag: str, split: str) -> list[float]:
    return [r["value"] for r in sorted(scal, key=lambda r: r["epoch"]) if r["tag"] == tag and r["split"] == split]


def run_loss_curves(ctx: Context) -> dict:
    """Figures 22–24: one run per figure's model, its curve plotted and summarised."""
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
        tr_vals, va_vals = _values(scal, tag, "train"), _values(scal, tag, "validation")
        table.append([fig_name, variant.name, f"`{tag}`", str(len(starts)), str(len(tr_vals)),
                      fmt(tr_vals[0] if tr_vals else None), fmt(tr_vals[-1] if tr_vals else None),
                      fmt(min(va_vals) if va_vals else None), f"![{fig_name}]({path.name})"])
    md += [markdown_table(HEADER, table), ""]
    return outputs(md, rows, {**base_record(ctx, [data]), "figures": figs})


KIND = register_kind(Kind("loss_curves", run_loss_curves, figure=True))
