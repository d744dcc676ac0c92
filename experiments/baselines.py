"""``python -m experiments.baselines``: print, write and publish the classical baselines' mAP@K tables.

``python -m experiments.baselines --dataset tux12|digits10|DIR [--k 50|all]`` prints, for the
test split, the full query x retrieval mAP@K table of each baseline (posterior product,
regularised CCA, label-space logistic regression, chance; computed by
:mod:`cvs_tf.evaluation.baselines`, which documents them) and writes it (Markdown, CSV, JSON) as
``results/baselines/<dataset>/<baseline>-k<K>.*`` (``--out DIR``). For instance-paired sets the
posterior and CCA baselines also print their instance-level table (R@1/5/10, median rank of each
query's own partner), written as ``<baseline>-recall.md`` / ``.json``. The last lines name the
strongest baseline. Only ``--publish`` writes into the ``<!-- baselines -->`` section of the page
``docs/results/baselines.md`` (``--doc FILE``), with the command exactly as run. Hyper-parameters are
chosen on the ``val`` split (the posterior product's ``C`` by cross-validation on train); the
test split is touched only for the final numbers.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from cvs_tf.data.store import FeatureSet
from cvs_tf.evaluation.baselines import BASELINES, K, run, strongest_summary
from cvs_tf.evaluation.metrics import normalize_k
from cvs_tf.evaluation.table import (
    format_recall,
    format_table,
    recall_markdown,
    to_markdown,
    write_table,
)
from cvs_tf.utils.atomic import atomic_file
from cvs_tf.utils.cli import ArgumentParser, CliError, run_cli

SECTION = ("<!-- baselines -->", "<!-- /baselines -->")
DEFAULT_DOC = "docs/results/baselines.md"
DEFAULT_OUT_DIR = "results/baselines"


# --------------------------------------------------------------------------- docs/results/baselines.md


def update_results(path: Path, key: str, body: str) -> None:
    """Replace (or add) the ``<!-- baselines:key -->`` block inside the delimited baselines section."""
    start, end = SECTION
    text = path.read_text() if path.exists() else ""
    if start not in text or end not in text:
        text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + f"{start}\n# Baselines\n\n{end}\n"
    head, rest = text.split(start, 1)
    section, tail = rest.split(end, 1)
    b0, b1 = f"<!-- baselines:{key} -->", f"<!-- /baselines:{key} -->"
    block = f"{b0}\n{body.strip()}\n{b1}"
    if b0 in section and b1 in section:
        section = re.sub(re.escape(b0) + r".*?" + re.escape(b1), lambda _: block, section, flags=re.S)
    else:
        section = section.rstrip("\n") + f"\n\n{block}\n"
    if not path.parent.is_dir():  # nothing is created around the page
        raise FileNotFoundError(f"{path}: directory {path.parent} does not exist")
    with atomic_file(path) as f:
        f.write(head + start + section.rstrip("\n") + "\n" + end + tail)


def _markdown_block(fs: FeatureSet, name: str, tables: dict, chosen: dict, command: str, minutes: float) -> str:
    counts = ", ".join(f"{m} {fs.count(m, 'train')}/{fs.count(m, 'val')}/{fs.count(m, 'test')}"
                       for m in fs.modalities)
    metric = next(iter(tables.values())).attrs["metric"]
    lines = [f"## {name}: baselines ({fs.data_label})", "",
             f"Command: `{command}`. Dataset `{fs.name}`, {fs.num_classes} classes, pairing "
             f"`{fs.manifest['pairing']}`; items train/val/test: {counts}. {metric} on the test split"
             + (" (and, instance level, R@K of each query's own partner)" if fs.paired else "")
             + "; hyper-parameters chosen on val (the posterior product's C by 5-fold CV on train).", ""]
    for b, df in tables.items():
        lines.append(to_markdown(df))
        if "recall" in df.attrs:
            lines.append(recall_markdown(df.attrs["recall"], recall_title(df)))
        if chosen.get(b):
            picks = "; ".join(f"{k}: " + ", ".join(f"{kk}={vv}" for kk, vv in v.items())
                              for k, v in chosen[b].items())
            where = "by CV on train" if b == "posterior" else "on val"
            lines.append(f"- chosen {where}: {picks}\n")
    lines += [f"- {line.strip()}" for line in strongest_summary(tables)] + [""]
    lines.append(f"_Wall time of this command: {minutes:.1f} min._")
    return "\n".join(lines)


def recall_title(df) -> str:
    """Title of a baseline's instance-level table, from its mAP table's title."""
    name = df.attrs["title"].split(" — ")[0]
    return f"{name} — instance level: R@K and median rank of each query's own partner, {df.attrs['split']} split"


def block_key(name: str, k) -> str:
    """Key of a dataset's block in the baselines section: ``NAME`` for mAP@50, else ``NAME-kK``."""
    return name if k == K else f"{name}-k{'all' if k is None else k}"


# --------------------------------------------------------------------------- command line


def _parse_k(text: str):
    """``--k``: a positive integer, or ``all`` (None: mAP@all)."""
    try:
        k = None if text.strip().lower() == "all" else int(text)
    except ValueError:
        raise CliError(f"--k must be a positive integer or 'all', got {text!r}") from None
    try:
        return normalize_k(k)
    except ValueError as exc:  # "k must be >= 1, got 0"
        raise CliError(f"--{exc}") from None


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m experiments.baselines", description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="tux12", help="embedded name (tux12, digits10) or feature-set directory")
    p.add_argument("--baselines", default=",".join(BASELINES), help=f"comma-separated subset of {','.join(BASELINES)}")
    p.add_argument("--modalities", default=None, help="comma-separated modalities (default: all)")
    p.add_argument("--k", default=str(K), help=f"cut-off K, or 'all' for mAP@all [{K}]")
    p.add_argument("--seed", type=int, default=0, help="seed of the class-aligned CCA pairing (default 0)")
    p.add_argument("--out", "--out-dir", dest="out", default=DEFAULT_OUT_DIR, metavar="DIR",
                   help=f"where the .md/.csv/.json tables go: DIR/<dataset>/<baseline>-k<K>.* [{DEFAULT_OUT_DIR}]")
    p.add_argument("--publish", action="store_true",
                   help=f"also replace this dataset's block of the baselines section of --doc [{DEFAULT_DOC}]")
    p.add_argument("--doc", "--results", dest="doc", default=None, metavar="FILE",
                   help=f"the results page --publish updates [{DEFAULT_DOC}; its folder must exist]")
    p.add_argument("--no-write", action="store_true", help="print only; write no file")
    return p


def _publish_target(args) -> Path | None:
    """The results page to update (checked before any work), or None without --publish."""
    if not args.publish:
        if args.doc is not None:
            raise CliError(f"--doc {args.doc}: the results page is written only with --publish")
        return None
    if args.no_write:
        raise CliError("--publish and --no-write contradict each other")
    doc = Path(args.doc or DEFAULT_DOC)
    if args.doc is None and not doc.parent.is_dir():
        raise CliError(f"--publish: {doc.parent}/ not found here (run from the repository root, or pass --doc FILE)")
    if not doc.parent.is_dir():
        raise CliError(f"--doc {doc}: directory {doc.parent} does not exist")
    return doc


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    wanted = [b.strip() for b in args.baselines.split(",") if b.strip()]
    bad = [b for b in wanted if b not in BASELINES]
    if bad or not wanted:
        raise CliError(f"--baselines: unknown {bad or 'empty'} (choose from {', '.join(BASELINES)})")
    mods = [m.strip() for m in args.modalities.split(",") if m.strip()] if args.modalities else None
    k = _parse_k(args.k)
    doc = _publish_target(args)
    t0 = time.time()
    fs, tables, chosen = run(args.dataset, wanted, modalities=mods, seed=args.seed, k=k,
                             log=lambda s: print(s, file=sys.stderr, flush=True))
    for df in tables.values():
        print(format_table(df))
        print()
        if "recall" in df.attrs:
            print(format_recall(df.attrs["recall"], recall_title(df)))
            print()
    print("\n".join(strongest_summary(tables)))
    if args.no_write:
        return 0
    out = Path(args.out) / fs.name
    for b, df in tables.items():
        write_table(df, out / f"{b}-k{'all' if k is None else k}")
        if "recall" in df.attrs:
            with atomic_file(out / f"{b}-recall.md") as f:
                f.write(recall_markdown(df.attrs["recall"], recall_title(df)))
            with atomic_file(out / f"{b}-recall.json") as f:
                json.dump({"title": recall_title(df), "split": df.attrs["split"], "recall": df.attrs["recall"]}, f,
                          indent=2, ensure_ascii=False)
                f.write("\n")
    print(f"wrote {out}/")
    if doc is not None:
        command = " ".join(["python -m experiments.baselines", *map(shlex.quote, argv)])
        block = _markdown_block(fs, fs.name, tables, chosen, command, (time.time() - t0) / 60)
        update_results(doc, block_key(fs.name, k), block)
        print(f"published into {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
