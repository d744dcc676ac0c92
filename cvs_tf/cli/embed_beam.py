"""`python -m cvs_tf.embed_beam`: embed feature shards with an export in an Apache Beam pipeline, then merge them into an index.

Commands::

    --export EXPORT_DIR --features 'GLOB' --modality M --out PREFIX [--runner R] [--batch-size N] [BEAM OPTIONS]
    merge --shards 'PREFIX-*' --out INDEX [--export DIR] [--kind exact|ivf|hnsw] [--nlist N] [--nprobe N]

The first runs RunInference with the export's ``M`` SavedModel over every shard matched by GLOB
(``.npz`` with ``features`` and ``ids``, or ``.npy`` with an optional ``.ids.txt``; see
cvs_tf.serving.shards) and writes ``PREFIX-SSSSS-of-NNNNN.npz`` (embeddings and ids); options it
does not know are Beam pipeline options. The second indexes a complete set of those shards in the
``python -m cvs_tf.index`` format, which ``python -m cvs_tf.search`` queries. The pipeline needs
apache-beam (requirements-beam.txt, ``make test-beam`` builds ``.venv-beam``); merge does not.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Sequence

from cvs_tf.retrieval.checks import BOUNDS
from cvs_tf.utils.cli import ArgumentParser, CliError, bounded_int, existing_path

#: rows per RunInference batch: at most this many (docs/beam.md)
MAX_BATCH = 1 << 20

PROG = "python -m cvs_tf.embed_beam"
NO_BEAM = ("apache-beam is not installed in this environment: run the pipeline in the Beam virtualenv "
           "(make test-beam builds .venv-beam from requirements-beam.txt; or pip install -r requirements-beam.txt)")


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROG, description="Embed feature shards with an export's SavedModel in an Apache Beam "
                       "pipeline (RunInference); 'merge' indexes the shards.",
                       epilog="Other --options are passed to Beam as pipeline options (e.g. --direct_num_workers 2 "
                              "--direct_running_mode multi_processing, or a cluster runner's; docs/beam.md).")
    p.add_argument("--export", required=True, metavar="EXPORT_DIR", type=existing_path("--export", "dir", "export directory"), help="an export of python -m cvs_tf.export")
    p.add_argument("--features", required=True, metavar="GLOB",
                   help="feature shards: .npz (features, ids) or .npy (+ NAME.ids.txt); quote the glob")
    p.add_argument("--modality", required=True, metavar="M", help="modality of the features")
    p.add_argument("--out", required=True, metavar="PREFIX", help="write PREFIX-SSSSS-of-NNNNN.npz, one per input shard")
    p.add_argument("--runner", default="DirectRunner", help="Beam runner [DirectRunner]")
    p.add_argument("--batch-size", type=bounded_int("--batch-size", 1, MAX_BATCH), default=1024,
                   help=f"rows per RunInference batch, at most {MAX_BATCH} [1024]")
    return p


def build_merge_parser() -> ArgumentParser:
    p = ArgumentParser(prog=f"{PROG} merge", description="Index a complete set of embedding shards (cvs_tf.index format).")
    p.add_argument("--shards", required=True, metavar="GLOB", help="the shards of one run, e.g. 'PREFIX-*'")
    p.add_argument("--out", required=True, metavar="INDEX", help="index directory to write")
    p.add_argument("--export", metavar="DIR", type=existing_path("--export", "dir", "export directory"),
                   help="the export the shards were embedded with [recorded in them]")
    p.add_argument("--kind", choices=("exact", "ivf", "hnsw"), default="exact", help="index kind [exact]")
    p.add_argument("--nlist", type=bounded_int("--nlist", *BOUNDS["nlist"]), help="ivf: number of lists [about sqrt(N)]")
    p.add_argument("--nprobe", type=bounded_int("--nprobe", *BOUNDS["nprobe"]), help="ivf: lists scanned per query [nlist/64]")
    p.add_argument("--overwrite", action="store_true", help="replace an existing index directory")
    return p


def parse_args(argv: Sequence[str] | None = None):
    """``(args, beam_args)``; ``args.command`` is ``embed`` or ``merge``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["merge"]:
        args, rest = build_merge_parser().parse_args(argv[1:]), []
        args.command = "merge"
        return args, rest
    args, rest = build_parser().parse_known_args(argv)
    if rest and not rest[0].startswith("--"):
        raise CliError(f"{PROG}: unrecognized arguments: {' '.join(rest)}")
    args.command, args.verbose = "embed", getattr(args, "verbose", False)
    return args, rest


def _embed(args, beam_args: list[str]) -> int:
    from cvs_tf.serving import shards
    from cvs_tf.serving.export import Export

    export = Export(args.export)
    dim = export.input_dim(args.modality)              # refuses a modality the export lacks
    plan = shards.plan_inputs(args.features, args.modality, dim)
    taken = shards.existing_outputs(args.out)
    if taken:
        raise CliError(f"{taken[0]}: embedding shards with prefix {args.out} exist already (remove them first)")
    if importlib.util.find_spec("apache_beam") is None:
        raise CliError(NO_BEAM)
    if not args.verbose:              # Beam logs a worker's error with its traceback; the error line says it
        logging.getLogger().setLevel(logging.ERROR)
        logging.getLogger("apache_beam").setLevel(logging.CRITICAL)
    from cvs_tf.serving.beam_pipeline import run_pipeline

    options = ["--runner", args.runner, *beam_args]
    outputs = run_pipeline(export, args.modality, plan, args.out, input_pattern=args.features,
                           batch_size=args.batch_size, pipeline_args=options)
    rows = sum(s.rows for s in plan)
    print(f"embedded {rows} {args.modality} items of {len(plan)} shards (D = {export.dim}, {args.runner}) "
          f"to {shards.output_name(args.out, 0, len(outputs))} ... {outputs[-1]}")
    return 0


def _merge(args) -> int:
    from cvs_tf.serving.shards import merge_shards

    index = merge_shards(args.shards, args.out, kind=args.kind, export_dir=args.export, nlist=args.nlist,
                         nprobe=args.nprobe, overwrite=args.overwrite)
    extra = ", ".join(f"{k} {v}" for k, v in index.params.items())
    print(f"indexed {index.count} {index.modality} items of {index.source['shards']} shards "
          f"(D = {index.dim}, {index.kind}{', ' + extra if extra else ''}) to {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args, beam_args = parse_args(argv)
    if args.command == "merge":
        return _merge(args)
    return _embed(args, beam_args)
