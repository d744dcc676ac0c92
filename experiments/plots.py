"""Figure drawing shared by the experiment kinds: matplotlib's Agg backend, PNGs written atomically."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cvs_tf.utils.atomic import atomic_file  # noqa: E402

MARKERS = ["o", "s", "^", "v", "D", "P", "X", "*", "<", ">"]


def save(fig, path: Path) -> Path:
    """Write ``fig`` to ``path`` as PNG (atomically) and close it."""
    try:
        with atomic_file(path, "wb") as f:
            fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


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
    return save(fig, path)


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
    return save(fig, path)


def plot_curves(runs: list[dict], path: Path, *, title: str) -> Path:
    """Per run: the reconstruction term (train solid, validation dashed) and the total training loss, per epoch."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    names = list(dict.fromkeys(r["variant"] for r in runs))
    for r in runs:
        color = colors[names.index(r["variant"]) % len(colors)]
        label = f"{r['variant']} (seed {r['seed']})"
        for ax, tag in ((axes[0], "loss/reconstruction"), (axes[1], "loss/loss")):
            for split, ls in (("train", "-"), ("validation", "--")):
                pts = r["curve"].get(split, {}).get(tag, [])
                if pts:
                    ax.plot(*zip(*pts), ls, color=color, lw=1, label=f"{label}, {split}")
    for ax, tag in ((axes[0], "reconstruction term"), (axes[1], "total loss")):
        ax.set_xlabel("epoch (stages concatenated)")
        ax.set_ylabel(tag)
        ys = [v for line in ax.get_lines() for v in line.get_ydata()]
        if ys and min(ys) > 0 and max(ys) / min(ys) > 20:  # an exploding term: log scale
            ax.set_yscale("log")
    axes[0].legend(fontsize=6)
    fig.suptitle(title, fontsize=9, y=1.03)
    return save(fig, path)


__all__ = ["MARKERS", "plot_curves", "plot_incremental", "plot_variant_bars", "save"]
