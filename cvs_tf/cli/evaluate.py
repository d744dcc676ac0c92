"""`python -m cvs_tf.evaluate RUN_DIR`: the cross-modal mAP table (and R@K for instance-paired sets) of a trained run."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from cvs_tf.utils.cli import (
    K_MAX,
    MAX_STAGE,
    ArgumentParser,
    CliError,
    bounded_int,
    parse_k,
    run_dir_parser,
)


def build_parser() -> ArgumentParser:
    p = run_dir_parser(
        "python -m cvs_tf.evaluate",
        "Evaluate a run: mAP@K over every ordered pair of distinct modalities (thesis Tables 7-11) and, for "
        "instance-paired sets, recall@1/5/10 and the median rank of each query's own partner. "
        "Labels are used only for scoring, never to embed or pair items.",
    )
    p.add_argument("--protocol", default="independent",
                   help="independent (default), pairwise, or rerank@K (e.g. rerank@50)")
    p.add_argument("--k", type=parse_k, default=50, help=f"cut-off K in [1, {K_MAX}], or 'all' for mAP@all [50]")
    p.add_argument("--split", choices=("val", "test"), default="test", help="split to evaluate [test]")
    p.add_argument("--stage", type=bounded_int("--stage", 1, MAX_STAGE), help="evaluate the model of this (1-based) stage [last]")
    p.add_argument("--out", metavar="FILE",
                   help="write the table to FILE.md, FILE.csv and FILE.json, or only to FILE when it ends in "
                        ".md, .csv or .json; an existing file is replaced only with --overwrite, and only a "
                        "table cvs_tf wrote [RUN_DIR/eval/<split>-<protocol>-k<K>.{md,csv,json}, which "
                        "replace the run's earlier tables of that name]")
    p.add_argument("--overwrite", action="store_true", help="replace existing --out files (cvs_tf tables only)")
    p.add_argument("--json", action="store_true",
                   help='print JSON instead of tables: {"map": <table record>, "recall": {split: {query: {retrieval: '
                        '{"1", "5", "10", "median_rank"}}}}} ("recall" only for instance-paired sets)')
    p.add_argument("--projector", action="store_true",
                   help="also write TensorBoard Embedding Projector files and a PCA/t-SNE PNG of the split's "
                        "embeddings, before and after training, to RUN_DIR/projector (cvs_tf.evaluation.projector); "
                        "refused, before anything is written, for an extended run")
    p.add_argument("--ensemble", nargs="+", metavar="RUN_DIR",
                   help="score RUN_DIR together with these runs (other seeds of the same recipe, on the same data) "
                        "as one seed ensemble: each item's embedding is the concatenation of the members' unit "
                        "embeddings, so a score is the mean of their cosines (cvs_tf.evaluation.ensemble); "
                        "independent protocol only [RUN_DIR/eval/<split>-ensemble<N>-k<K>.*]")
    return p


def parse_args(argv: Sequence[str] | None = None):
    return build_parser().parse_args(argv)


def table_outputs(args, protocol, k) -> tuple[Path, tuple[str, ...], bool]:
    """``(stem, extensions, overwrite)`` of the table files: ``--out`` as documented in ``--help``."""
    from cvs_tf.evaluation.table import TABLE_EXTS

    if not args.out:
        klabel = "all" if k is None else k
        name = f"ensemble{1 + len(args.ensemble)}" if args.ensemble else str(protocol).replace("@", "")
        stem = Path(args.run_dir) / "eval" / f"{args.split}-{name}-k{klabel}"
        return stem, TABLE_EXTS, True  # the run's own eval/ tables (still only files cvs_tf wrote)
    out = Path(args.out)
    if out.suffix in tuple(f".{e}" for e in TABLE_EXTS):
        return out.with_suffix(""), (out.suffix[1:],), args.overwrite
    return out, TABLE_EXTS, args.overwrite


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from cvs_tf.evaluation.metrics import NonFiniteError
    from cvs_tf.evaluation.protocols import parse_protocol
    from cvs_tf.evaluation.table import (
        cross_modal_recall,
        cross_modal_table,
        is_table_file,
        table_paths,
        write_table,
    )
    from cvs_tf.training.run_dir import RunDirError, load_run
    from cvs_tf.utils.output import OutputFiles

    k = args.k
    protocol = parse_protocol(args.protocol)
    if protocol.k is not None and protocol.k > K_MAX:
        raise CliError(f"--protocol: rerank@K needs K in [1, {K_MAX}], got {protocol.k}")
    if args.overwrite and not args.out:
        raise CliError("--overwrite applies to --out files (the run's own eval/ tables are always replaced)")
    if args.ensemble and (str(protocol) != "independent" or args.projector):
        raise CliError("--ensemble scores the independent protocol only, without --projector")
    stem, exts, overwrite = table_outputs(args, protocol, k)
    paths = table_paths(stem, exts)
    try:
        model, fs, cfg = load_run(args.run_dir, stage=args.stage)
        members = [load_run(d, stage=args.stage) for d in args.ensemble or ()]
    except RunDirError as exc:
        raise CliError(str(exc)) from None
    with OutputFiles(paths.values(), noun="table file", recognise=is_table_file, overwrite=overwrite,
                     error=CliError) as outputs:  # checked and locked before anything is computed
        empty = [m for m in model.modalities if m in fs.modalities and fs.count(m, args.split) == 0]
        if empty:
            raise CliError(f"dataset {fs.name} has no {args.split} items for {', '.join(empty)}"
                           + (" (a set without a validation split): evaluate --split test" if args.split == "val"
                              else ""))
        contents = None
        if args.projector:  # refused or computed before anything is written
            from cvs_tf.evaluation.projector import projector_contents, write_projector

            contents = projector_contents(args.run_dir, model, fs, split=args.split)
        mods = [m for m in model.modalities if m in fs.modalities]  # an extended run's set may lack known modalities
        scored = _ensemble(args, model, fs, cfg, members, mods) if members else model
        try:
            df = cross_modal_table(scored, split=args.split, k=k, protocol=protocol, dataset=fs, modalities=mods,
                                   data_label=fs.data_label)
            recall = (cross_modal_recall(scored, split=args.split, protocol=protocol, dataset=fs, modalities=mods)
                      if fs.paired else None)
        except NonFiniteError as exc:
            raise CliError(f"{args.run_dir}: the run diverged: its model (stage {model.current_stage + 1}) gives NaN "
                           f"or Inf on the {args.split} split ({exc}); nothing written; train a new run with a "
                           "smaller --lr") from None
        write_table(df, stem, exts=exts, into=outputs)
    report = _report(args, df, recall, protocol, paths)
    if contents is not None:
        where = write_projector(args.run_dir, model, fs, split=args.split, contents=contents)
        report(f"wrote {where} (tensorboard --logdir it: Projector tab)")
    return 0


def _ensemble(args, model, fs, cfg, members, mods) -> dict:
    """The seed ensemble's ``{modality: (embeddings, labels)}`` of the split, after checking the members."""
    from cvs_tf.evaluation.ensemble import check_members, ensemble_embeddings

    try:
        check_members(cfg, [(d, c) for d, (_, _, c) in zip(args.ensemble, members)], mods,
                      [mm.modalities for mm, _, _ in members])
    except ValueError as exc:
        raise CliError(f"--ensemble {exc}") from None
    return ensemble_embeddings([model] + [mm for mm, _, _ in members], fs, args.split, mods)


def _report(args, df, recall, protocol, paths):
    """Print the tables (or ``--json``) and what was written; return the printer for later lines."""
    from cvs_tf.evaluation.table import format_recall, format_table, table_record

    report = print
    if args.json:
        report = functools.partial(print, file=sys.stderr)
        print(json.dumps({"map": table_record(df), **({"recall": {args.split: recall}} if recall else {}),
                          **({"ensemble": [str(args.run_dir), *args.ensemble]} if args.ensemble else {})},
                         indent=2, ensure_ascii=False))
    else:
        if args.ensemble:
            print(f"seed ensemble of {1 + len(args.ensemble)} runs: {args.run_dir}, {', '.join(args.ensemble)}")
        print(format_table(df))
        if recall:
            print("\n" + format_recall(recall, f"instance level: each query's own partner ({protocol} protocol, "
                                                 f"{args.split} split)"))
    report("\nwrote " + ", ".join(str(p) for p in paths.values()))
    return report
