"""`python -m cvs_tf.search INDEX [INDEX ...] --query-modality M`: the nearest gallery items of a query, per index.

The query is raw features of modality M: ``--query-features FILE.npy`` ((d_m,) or (N, d_m)), or
``--query-id SPLIT:ROW``, a row of the feature set the indexes were built from (or of
``--dataset D``). It is embedded with the export the indexes were built with (recorded in each
index; ``--export DIR`` when it has moved), and every index prints its top k with ids, class
names, scores and modality (``--json`` for machine-readable output).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cvs_tf.retrieval.checks import BOUNDS
from cvs_tf.utils.arrayfile import load_matrix
from cvs_tf.utils.cli import ArgumentParser, CliError, bounded_int, existing_path


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m cvs_tf.search", description=__doc__.split("\n")[0].strip("`"))
    p.add_argument("indexes", nargs="+", metavar="INDEX", type=existing_path("INDEX", "dir", "index directory"), help="index directories (python -m cvs_tf.index build)")
    p.add_argument("--query-modality", required=True, metavar="M", help="modality of the query features")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--query-features", metavar="FILE.npy", type=existing_path("--query-features", noun="query file"),
                   help="raw query features, (d_m,) or (N, d_m): a .npy, or a .npz holding one array (or 'features')")
    q.add_argument("--query-id", metavar="SPLIT:ROW", help="a row of the indexes' feature set (or of --dataset)")
    q.add_argument("--query-raw", metavar="FILE|TEXT", help="a raw query: an image, WAV or mesh file, or a text, run "
                   "through the encoder the export records (python -m cvs_tf.export --with-encoders)")
    p.add_argument("--dataset", metavar="D", help="feature set (name or directory) that --query-id refers to")
    p.add_argument("--export", metavar="DIR", type=existing_path("--export", "dir", "export directory"), help="the export the indexes were built with [recorded in the index]")
    p.add_argument("--k", type=bounded_int("--k", *BOUNDS["k"]), default=10, help="items per index [10]")
    p.add_argument("--nprobe", type=bounded_int("--nprobe", *BOUNDS["nprobe"]),
                   help="ivf indexes: lists scanned [saved default]")
    p.add_argument("--ef-search", type=bounded_int("--ef-search", *BOUNDS["ef_search"]),
                   help="hnsw indexes: search beam [saved default]")
    p.add_argument("--min-precision", type=open_unit("--min-precision"), metavar="P",
                   help="return only results whose score reaches the export's calibrated threshold for precision P "
                        "(same class) on the validation split, P in (0, 1); each result shows its precision")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    return p


def open_unit(name: str):
    """An argparse ``type=`` for a number in the open interval (0, 1)."""

    def parse(text: str) -> float:
        from cvs_tf.evaluation.calibration import check_min_precision

        try:
            return check_min_precision(text)
        except ValueError:
            raise CliError(f"{name}: must be a number in (0, 1) (exclusive), got {text!r}") from None

    return parse


def parse_args(argv: Sequence[str] | None = None):
    return build_parser().parse_args(argv)


def _export_dir(args, indexes) -> Path:
    from cvs_tf.retrieval.search import export_dir_of

    if args.export:
        return Path(args.export)
    where = export_dir_of(indexes[0])
    if where is None:
        raise CliError(f"{indexes[0].path}: index does not record where its export is; pass --export DIR")
    if not (where / "export.json").is_file():
        raise CliError(f"{where}: export of index {indexes[0].path} is missing (moved or deleted?); pass --export DIR")
    return where


def _featureset_of(args, indexes):
    """The feature set a --query-id refers to: --dataset, else the one the first feature-set index came from."""
    from cvs_tf.data.registry import dataset_path
    from cvs_tf.data.store import load_feature_set

    if args.dataset:
        return load_feature_set(dataset_path(args.dataset))
    for ix in indexes:
        src = ix.source or {}
        if src.get("type") != "featureset":
            continue
        if src.get("path_from_index") is not None:
            path = (ix.path / src["path_from_index"]).resolve()
        else:
            path = dataset_path(src.get("name") or src.get("dataset"))
        fs = load_feature_set(path)
        if fs.manifest_sha256 != src.get("manifest_sha256"):
            raise CliError(f"{fs.path}: feature set differs from the one index {ix.path} was built from; "
                           "pass --dataset D")
        return fs
    raise CliError("--query-id needs --dataset D: no index was built from a feature set")


def _query(args, indexes):
    """(features (N, d_m), description dict) of the query."""
    if args.query_features:
        x = load_matrix(args.query_features, "query features", one_row=True)
        return x, {"modality": args.query_modality, "features": Path(args.query_features).name, "rows": int(x.shape[0])}
    split, sep, row = args.query_id.partition(":")
    if not sep or split not in ("train", "val", "test") or not row.lstrip("-").isdigit():
        raise CliError(f"--query-id must be SPLIT:ROW with SPLIT train, val or test (e.g. test:0), got {args.query_id!r}")
    fs = _featureset_of(args, indexes)
    x = fs.x(args.query_modality, split)
    r = int(row)
    if not 0 <= r < len(x):
        raise CliError(f"--query-id {args.query_id}: row out of range ({fs.name} {args.query_modality} {split} "
                       f"has {len(x)} rows)")
    y = fs.y(args.query_modality, split)[r]
    label = np.flatnonzero(y).tolist() if np.ndim(y) else int(y)
    cls = "+".join(fs.classes[i] for i in label) if isinstance(label, list) else fs.classes[label]
    return np.asarray(x[r:r + 1]), {"modality": args.query_modality, "id": args.query_id, "dataset": fs.name,
                                    "label": label, "class": cls, "rows": 1}


def format_results(query: dict, results, k: int, min_precision: float | None = None) -> str:
    """Plain-text tables: one per index and query row."""
    what = query.get("id") or query.get("features") or repr(query.get("raw"))
    cls = f" (class {query['class']})" if query.get("class") is not None else ""
    lines = []
    for q in range(results[0].num_queries if results else 0):
        row = f" row {q}" if query.get("rows", 1) > 1 else ""
        lines.append(f"query: {query['modality']} {what}{row}{cls}")
        for res in results:
            ix = res.index
            extra = ", ".join(f"{a} {ix.params[a]}" for a in ("nprobe", "ef_search") if a in ix.params)
            cut = "" if res.threshold is None and not min_precision else (
                f"; min precision {min_precision:g}: score ≥ {res.threshold:.4f}" if res.threshold is not None
                else f"; no score reaches precision {min_precision:g} on validation")
            lines.append(f"  {res.name}: top {k} of {ix.count} {ix.modality} items ({ix.kind}"
                         f"{', ' + extra if extra else ''}){cut}")
            hits = res.hits(q)
            cells = [(str(h.rank), h.modality or "-", h.id, h.class_name or "-",
                      "-" if h.precision is None else f"{h.precision:.3f}", f"{h.score:.4f}") for h in hits]
            lines += _table(("rank", "modality", "id", "class", "precision", "score"), cells)
    return "\n".join(lines)


def _table(head: tuple, cells: list[tuple]) -> list[str]:
    """Aligned rows, indented; rank and score right-aligned."""
    w = [max(len(head[i]), *(len(c[i]) for c in cells)) if cells else len(head[i]) for i in range(len(head))]
    right = (0, len(head) - 1)
    return ["    " + "  ".join(v.rjust(w[i]) if i in right else v.ljust(w[i]) for i, v in enumerate(c))
            for c in [head, *cells]]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from cvs_tf.retrieval.index import Index
    from cvs_tf.retrieval.search import Searcher

    if args.dataset and (args.query_features or args.query_raw is not None):
        raise CliError("--dataset applies to --query-id (the feature set its SPLIT:ROW refers to), not to --query-features")
    indexes = [Index.load(p) for p in args.indexes]
    for flag, value, kind in (("--nprobe", args.nprobe, "ivf"), ("--ef-search", args.ef_search, "hnsw")):
        if value is not None and not any(ix.kind == kind for ix in indexes):
            raise CliError(f"{flag} applies to {kind} indexes, and none of the given indexes is one")
    searcher = Searcher(_export_dir(args, indexes), indexes)
    if args.query_raw is not None:
        from cvs_tf.serving.raw_export import embed_raw

        x = embed_raw(searcher.export, args.query_modality, [args.query_raw])
        query = {"modality": args.query_modality, "raw": args.query_raw, "rows": 1}
    else:
        x, query = _query(args, indexes)
    results = searcher.search(args.query_modality, x, args.k, nprobe=args.nprobe, ef_search=args.ef_search,
                              embedded=args.query_raw is not None, min_precision=args.min_precision)
    if args.json:
        json.dump({"query": query, "k": args.k, "min_precision": args.min_precision, "export": searcher.export.identity,
                   "results": [r.to_dict() for r in results]}, sys.stdout, indent=2)
        print()
    else:
        print(format_results(query, results, args.k, args.min_precision))
    return 0
