"""The report's matplotlib figures, each returned as a PNG data URI (inlined in the HTML, nothing fetched)."""

from __future__ import annotations

import base64
import io
import math

import numpy as np

DPI = 96


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def to_data_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    _plt().close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def png_file_uri(path) -> str:
    with open(path, "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode("ascii")


def _annotate(ax, mat: np.ndarray, fmt: str = "{:.2f}", size: int = 8) -> None:
    for (i, j), v in np.ndenumerate(mat):
        if np.isfinite(v):
            ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=size,
                    color="white" if v < 0.55 else "black")


def heatmap(mat: np.ndarray, rows: list[str], cols: list[str], title: str, *, xlabel: str = "",
            ylabel: str = "", annotate: bool = True, size=None) -> str:
    """A [0, 1] heat map with its values written in the cells (NaN cells blank)."""
    plt = _plt()
    w, h = size or (1.2 + 0.75 * len(cols), 1.0 + 0.5 * len(rows))
    fig, ax = plt.subplots(figsize=(max(w, 4), max(h, 2.6)))
    im = ax.imshow(np.ma.masked_invalid(mat), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=45 if max(map(len, cols)) > 6 else 0, ha="right"
                  if max(map(len, cols)) > 6 else "center")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if annotate:
        _annotate(ax, mat, size=7 if len(cols) > 8 else 8)
    fig.colorbar(im, ax=ax, fraction=0.04)
    ax.set_title(title, fontsize=10)
    return to_data_uri(fig)


def loss_curves(curves: dict) -> str | None:
    """One panel per stage: every ``loss/*`` scalar per epoch, train solid, validation dashed."""
    stages = [s for s in curves if any(t.startswith("loss/") for p in curves[s].values() for t in p)]
    if not stages:
        return None
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(len(stages), 1, figsize=(9.5, 3.8 * len(stages)), squeeze=False)
    for ax, stage in zip(axes[:, 0], stages):
        colours = {}
        for part, style in (("train", "-"), ("validation", "--")):
            for tag, pts in sorted(curves[stage].get(part, {}).items()):
                if not tag.startswith("loss/") or not pts:
                    continue
                name = tag[5:]
                steps, values = zip(*pts)
                line, = ax.plot(steps, values, style, color=colours.get(name), marker="." if len(pts) < 3 else None,
                                label=name if part == "train" or name not in colours else None,
                                lw=2.2 if name == "loss" else 1.2)
                colours.setdefault(name, line.get_color())
        ax.set_title(f"{stage} (solid: train, dashed: validation)", fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return to_data_uri(fig)


def confusion_grid(confusions: dict, classes: list[str], top: int) -> str:
    """One small heat map per ordered pair: rows = query class, columns = retrieved class."""
    plt = _plt()
    n = len(confusions)
    cols = min(n, 3 if len(classes) > 6 else 4)
    rows = math.ceil(n / cols)
    side = 1.6 + 0.28 * len(classes)
    fig, axes = plt.subplots(rows, cols, figsize=(side * cols, side * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    short = [c[:10] for c in classes]
    for ax, (pair, mat) in zip(axes.ravel(), confusions.items()):
        ax.imshow(mat, vmin=0, vmax=1, cmap="magma")
        ax.set_title(pair, fontsize=9)
        ax.set_xticks(range(len(classes)), short, rotation=90, fontsize=6)
        ax.set_yticks(range(len(classes)), short, fontsize=6)
    fig.suptitle(f"retrieved class of the top {top} (rows: query class; columns: class retrieved; "
                 "bright diagonal = right)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return to_data_uri(fig)


def _centres(bins: int, lo: float, hi: float) -> np.ndarray:
    edges = np.linspace(lo, hi, bins + 1)
    return (edges[:-1] + edges[1:]) / 2


def calibration_grid(calibration: dict) -> str:
    """Per ordered pair of distinct modalities: score densities (same class, other class, partner) and thresholds."""
    plt = _plt()
    mods = calibration["modalities"]
    pairs = [(q, r) for q in mods for r in mods if q != r]
    cols = min(len(pairs), 4)
    rows = math.ceil(len(pairs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.ravel()[len(pairs):]:
        ax.axis("off")
    lo, hi = calibration.get("hist_range", [-1.0, 1.0])
    x = _centres(int(calibration.get("hist_bins", 40)), lo, hi)
    styles = {"same_class": ("tab:green", "same class"), "other_class": ("tab:red", "other class"),
              "partner": ("tab:blue", "exact partner")}
    for ax, (q, r) in zip(axes.ravel(), pairs):
        rec = calibration["pairs"][q][r]
        for key, counts in rec["histograms"].items():
            counts = np.asarray(counts, float)
            if counts.sum():
                colour, label = styles[key]
                ax.step(x, counts / counts.sum(), where="mid", color=colour, label=f"{label} ({int(counts.sum())})",
                        lw=1.8 if key == "same_class" else 1.2, ls="--" if key == "partner" else "-")
        for p, t in rec["thresholds"].items():
            if t is not None:
                ax.axvline(t, color="0.4", ls=":", lw=1)
                ax.text(t, 0.0, f" P≥{float(p):g}", rotation=90, fontsize=6, va="bottom", color="0.3")
        ax.set_title(f"{q}→{r}", fontsize=9)
        ax.set_xlabel("cosine score", fontsize=8)
        ax.set_ylabel("share of pairs", fontsize=8)
        ax.legend(fontsize=6, frameon=False, loc="upper left")
    fig.tight_layout()
    return to_data_uri(fig)
