"""`python -m cvs_tf.evaluate RUN_DIR`: the cross-modal mAP table (and R@K for instance-paired sets) of a trained run."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from cvs_tf.utils.cli import ArgumentParser, CliError, parse_k, run_dir_parser


def build_parser() -> ArgumentParser:
    p = run_dir_parser(
        "python -m cvs_tf.evaluate",
        "Evaluate a run: mAP@K over every ordered pair of distinct modalities (thesis Tables 7-11) and, for "
        "instance-paired sets, recall@1/5/10 and the median rank of each query's own partner. "
        "Labels are used only for scoring, never to embed or pair items.",
    )
    p.add_argument("--protocol", default="independent",
                   help="independent (default), pairwise, or rerank@K (e.g. rerank@50)")
    p.add_argument("--k", default="50", help="cut-off K, or 'all' for mAP@all [50]")
    p.add_argument("--split", choices=("val", "test"), default="test", help="split to evaluate [test]")
    p.add_argument("--stage", type=int, help="evaluate the model of this (1-based) stage [last]")
    p.add_argument("--out", metavar="FILE",
                   help="output stem for .md/.csv/.json [RUN_DIR/eval/<split>-<protocol>-k<K>]")
    p.add_argument("--json", action="store_true",
                   help='print JSON instead of tables: {"map": <table record>, "recall": {split: {query: {retrieval: '
                        '{"1", "5", "10", "median_rank"}}}}} ("recall" only for instance-paired sets)')
    p.add_argument("--projector", action="store_true",
                   help="also write TensorBoard Embedding Projector files and a PCA/t-SNE PNG of the split's "
                        "embeddings, before and after training, to RUN_DIR/projector (cvs_tf.evaluation.projector)")
    return p


def parse_args(argv: Sequence[str] | None = None):
    return build_parser().parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from cvs_tf.evaluation.protocols import parse_protocol
    from cvs_tf.evaluation.table import (
        cross_modal_recall,
        cross_modal_table,
        format_recall,
        format_table,
        table_record,
        write_table,
    )
    from cvs_tf.training.run_dir import RunDirError, load_run

    k = parse_k(args.k)
    protocol = parse_protocol(args.protocol)
    try:
        model, fs, _ = load_run(args.run_dir, stage=args.stage)
    except RunDirError as exc:
        raise CliError(str(exc)) from None
    empty = [m for m in model.modalities if m in fs.modalities and fs.count(m, args.split) == 0]
    if empty:
        raise CliError(f"dataset {fs.name} has no {args.split} items for {', '.join(empty)}"
                       + (" (a set without a validation split): evaluate --split test" if args.split == "val" else ""))
    mods = [m for m in model.modalities if m in fs.modalities]  # an extended run's set may lack known modalities
    df = cross_modal_table(model, split=args.split, k=k, protocol=protocol, dataset=fs, modalities=mods)
    recall = (cross_modal_recall(model, split=args.split, protocol=protocol, dataset=fs, modalities=mods)
              if fs.paired else None)
    klabel = "all" if k is None else k
    stem = Path(args.out) if args.out else Path(args.run_dir) / "eval" / f"{args.split}-{str(protocol).replace('@', '')}-k{klabel}"
    if stem.suffix in (".md", ".csv", ".json"):
        stem = stem.with_suffix("")
    paths = write_table(df, stem)
    report = print
    if args.json:
        report = functools.partial(print, file=sys.stderr)
        print(json.dumps({"map": table_record(df), **({"recall": {args.split: recall}} if recall else {})},
                         indent=2, ensure_ascii=False))
    else:
        print(format_table(df))
        if recall:
            print("\n" + format_recall(recall, f"instance level: each query's own partner ({protocol} protocol, "
                                                 f"{args.split} split)"))
    report("\nwrote " + ", ".join(str(p) for p in paths.values()))
    if args.projector:
        from cvs_tf.evaluation.projector import write_projector

        report(f"wrote {write_projector(args.run_dir, model, fs, split=args.split)} (tensorboard --logdir it: Projector tab)")
    return 0
