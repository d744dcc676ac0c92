"""`make demo`: train the best preset and the thesis recipe on the embedded Tux-12 data; print their mAP@50 beside baselines."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from cvs_tf.utils.cli import ArgumentParser, run_cli


def parse_args(argv: Sequence[str] | None = None):
    p = ArgumentParser(prog="python -m cvs_tf.demo", description=__doc__)
    p.add_argument("--dataset", default="tux12", help="dataset name or directory [tux12]")
    p.add_argument("--epochs", type=int, help="max epochs (early stopping on validation mAP@50) [the preset's]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="run directory; the two runs go to OUT/best and OUT/thesis [runs/demo-<time>]")
    return p.parse_args(argv)


PRESETS = (("best", "best preset (ours)"), ("thesis", "thesis recipe"))


def comparison(ours, baselines: dict) -> str:
    """Text table: one row per ordered pair, our test mAP@50 (``ours``: a table, or {name: table}) beside each baseline."""
    ours = ours if isinstance(ours, dict) else {"ours": ours}
    names = list(ours) + list(baselines)
    frames = list(ours.values()) + list(baselines.values())
    first = frames[0]
    mods = [m for m in first.index if m != "mean"]
    rows = [[f"{q}→{r}"] + [f"{f.at[q, r]:.3f}" for f in frames] for q in mods for r in mods if q != r]
    rows.append(["overall mean"] + [f"{f.attrs['overall_mean']:.3f}" for f in frames])
    header = ["pair"] + names
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from cvs_tf.cli.train import main as train_main
    from cvs_tf.spaces import DEFAULT_SPACE

    out = Path(args.out or Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}")
    t0 = time.time()
    from cvs_tf.evaluation.table import read_table

    ours = {}
    for preset, label in PRESETS:
        print(f"\n=== {label}: python -m cvs_tf.train --preset {preset} ===", flush=True)
        epochs = ["--epochs", str(args.epochs)] if args.epochs else []
        train_main(["--preset", preset, "--space", DEFAULT_SPACE, "--dataset", args.dataset, *epochs,
                    "--seed", str(args.seed), "--out", str(out / preset), "--quiet"])
        ours[label] = read_table(out / preset / "eval" / "test-independent-k50.json")
    from cvs_tf.evaluation.baselines import run as run_baselines

    print("\nbaselines on the same test split (hyper-parameters chosen on validation):", flush=True)
    fs, tables, _ = run_baselines(args.dataset, log=lambda m: None)
    names = {"cca": "CCA", "label": "label-space", "chance": "chance"}
    print(f"\ntest mAP@50, {fs.name} ({fs.data_label}), independent protocol:\n")
    print(comparison(ours, {names[k]: v for k, v in tables.items()}))
    best, thesis = (ours[label].attrs["overall_mean"] for _, label in PRESETS)
    beats = sum(best > t.attrs["overall_mean"] for t in tables.values())
    print(f"\nbest preset {best:.3f} against the thesis recipe {thesis:.3f} ({best - thesis:+.3f}); it beats "
          f"{beats}/{len(tables)} baselines on the overall mean; total time {time.time() - t0:.0f} s; runs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
