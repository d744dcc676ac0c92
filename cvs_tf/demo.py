"""`make demo`: train a CVS with attention on the embedded Tux-12 data and print its mAP@50 table beside baselines."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cvs_tf.utils.cli import ArgumentParser, run_cli


def parse_args(argv: Sequence[str] | None = None):
    p = ArgumentParser(prog="python -m cvs_tf.demo", description=__doc__)
    p.add_argument("--dataset", default="tux12", help="dataset name or directory [tux12]")
    p.add_argument("--epochs", type=int, default=100, help="max epochs (early stopping on validation mAP@50) [100]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="run directory [runs/demo-<time>]")
    return p.parse_args(argv)


def comparison(ours, baselines: dict) -> str:
    """Markdown-ish text table: one row per ordered pair, our test mAP@50 beside each baseline."""
    mods = [m for m in ours.index if m != "mean"]
    names = ["CVS+att (ours)"] + [f"{n}" for n in baselines]
    frames = [ours] + list(baselines.values())
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

    out = args.out or str(Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}")
    t0 = time.time()
    train_main(["--space", DEFAULT_SPACE, "--dataset", args.dataset, "--epochs", str(args.epochs), "--seed", str(args.seed),
                "--out", out, "--quiet"])
    from cvs_tf.evaluation.baselines import run as run_baselines
    from cvs_tf.evaluation.table import read_table

    ours = read_table(Path(out) / "eval" / "test-independent-k50.json")
    print("\nbaselines on the same test split (hyper-parameters chosen on validation):", flush=True)
    fs, tables, _ = run_baselines(args.dataset, log=lambda m: None)
    names = {"cca": "CCA", "label": "label-space", "chance": "chance"}
    print(f"\ntest mAP@50, {fs.name} ({fs.data_label}), independent protocol:\n")
    print(comparison(ours, {names[k]: v for k, v in tables.items()}))
    beats = np.mean([ours.attrs["overall_mean"] > t.attrs["overall_mean"] for t in tables.values()])
    print(f"\nours beats {int(beats * len(tables))}/{len(tables)} baselines on the overall mean; "
          f"total time {time.time() - t0:.0f} s; run directory {out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
