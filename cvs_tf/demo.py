"""`make demo`: train the best preset and the thesis recipe on the embedded Tux-12 data; print their mAP@50 and R@K beside baselines."""

from __future__ import annotations

import json
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
#: The baselines the demo compares with, strongest first (chance is the floor).
DEMO_BASELINES = ("posterior", "cca", "label", "chance")


def _grid(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows])


def comparison(ours, baselines: dict) -> str:
    """Text table: one row per ordered pair, our test mAP@50 (``ours``: a table, or {name: table}) beside each baseline."""
    ours = ours if isinstance(ours, dict) else {"ours": ours}
    frames = list(ours.values()) + list(baselines.values())
    mods = [m for m in frames[0].index if m != "mean"]
    rows = [[f"{q}→{r}"] + [f"{f.at[q, r]:.3f}" for f in frames] for q in mods for r in mods if q != r]
    rows.append(["overall mean"] + [f"{f.attrs['overall_mean']:.3f}" for f in frames])
    return _grid(["pair"] + list(ours) + list(baselines), rows)


def recall_comparison(records: dict) -> str:
    """Text table: one row per ordered pair, ``R@1/R@5/R@10`` of each method in ``{name: recall record}``,
    then the means over the pairs and the mean of the median ranks."""
    from cvs_tf.evaluation.baselines import recall_means

    first = next(iter(records.values()))
    pairs = [(q, r) for q in first for r in first[q]]
    cell = lambda rec: f"{rec['1']:.3f}/{rec['5']:.3f}/{rec['10']:.3f}"  # noqa: E731
    rows = [[f"{q}→{r}"] + [cell(rec[q][r]) for rec in records.values()] for q, r in pairs]
    means = [recall_means(rec) for rec in records.values()]
    rows.append(["mean"] + [cell(m) for m in means])
    rows.append(["median rank (mean)"] + [f"{m['median_rank']:.1f}" for m in means])
    return _grid(["pair (R@1/R@5/R@10)"] + list(records), rows)


def _test_recall(run_dir: Path) -> dict | None:
    """The run's test recall record from metrics.json (instance-paired sets), else None."""
    path = run_dir / "metrics.json"
    if not path.is_file():
        return None
    return (json.loads(path.read_text()).get("recall") or {}).get("test")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from cvs_tf.cli.train import main as train_main
    from cvs_tf.spaces import DEFAULT_SPACE

    out = Path(args.out or Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}")
    t0 = time.time()
    from cvs_tf.evaluation.table import read_table

    ours, ours_recall = {}, {}
    for preset, label in PRESETS:
        print(f"\n=== {label}: python -m cvs_tf.train --preset {preset} ===", flush=True)
        epochs = ["--epochs", str(args.epochs)] if args.epochs else []
        train_main(["--preset", preset, "--space", DEFAULT_SPACE, "--dataset", args.dataset, *epochs,
                    "--seed", str(args.seed), "--out", str(out / preset), "--quiet"])
        ours[label] = read_table(out / preset / "eval" / "test-independent-k50.json")
        if (rec := _test_recall(out / preset)) is not None:
            ours_recall[label] = rec
    t_train = time.time() - t0
    from cvs_tf.evaluation.baselines import BASELINE_LABELS, strongest_summary
    from cvs_tf.evaluation.baselines import run as run_baselines

    print("\nbaselines on the same test split (hyper-parameters chosen on validation, the posterior "
          "product's by cross-validation on train):", flush=True)
    fs, tables, _ = run_baselines(args.dataset, DEMO_BASELINES, log=lambda m: None)
    print(f"\nclass level: test mAP@50, {fs.name} ({fs.data_label}), independent protocol:\n")
    print(comparison(ours, {BASELINE_LABELS[k]: v for k, v in tables.items()}))
    if ours_recall:
        records = {**ours_recall, **{BASELINE_LABELS[b]: df.attrs["recall"] for b, df in tables.items()
                                     if "recall" in df.attrs}}
        print(f"\ninstance level: R@1/R@5/R@10 of each query's own partner, test split of {fs.name}:\n")
        print(recall_comparison(records))
    print()
    print("\n".join(strongest_summary(tables, {label: df.attrs["overall_mean"] for label, df in ours.items()},
                                      ours_recall)))
    best, thesis = (ours[label].attrs["overall_mean"] for _, label in PRESETS)
    print(f"\nbest preset {best:.3f} against the thesis recipe {thesis:.3f} ({best - thesis:+.3f}); "
          f"training {t_train:.0f} s, baselines {time.time() - t0 - t_train:.0f} s, total {time.time() - t0:.0f} s; "
          f"runs in {out}")
    from cvs_tf.report import ReportError, write_report

    try:  # the recommended recipe's run, as a page to look at (docs/report.md)
        print(f"report of the best preset's run: {write_report(out / 'best', tables=tables)}")
    except ReportError as exc:
        print(f"report not written: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
