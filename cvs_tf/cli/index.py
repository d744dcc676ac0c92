"""`python -m cvs_tf.index build|info`: embed a gallery with an export and index it (faiss), or describe an index.

Subcommands::

    build EXPORT_DIR --features FEATURES --modality M --out INDEX [--kind exact|ivf|hnsw] [--split S]
    info INDEX

FEATURES is a feature-set directory or dataset name (rows of ``--split``, default test; ids
``SPLIT:ROW``, labels and class names from the set) or a ``.npy`` of raw (N, d_m) features (ids
are row numbers unless ``--ids`` gives a text file with one id per line; ``--labels`` a .npy).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cvs_tf.retrieval.checks import BOUNDS
from cvs_tf.utils.arrayfile import load_array, load_matrix
from cvs_tf.utils.cli import ArgumentParser, CliError, bounded_int, existing_path


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m cvs_tf.index", description=__doc__.split("\n")[0].strip("`"))
    sub = p.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    b = sub.add_parser("build", help="embed a gallery with an export and index it")
    b.add_argument("export_dir", metavar="EXPORT_DIR", type=existing_path("EXPORT_DIR", "dir", "export directory"),
                   help="an export written by python -m cvs_tf.export")
    b.add_argument("--features", required=True, metavar="FEATURES",
                   help="feature-set directory or dataset name, or a .npy (or one-array .npz) of raw (N, d_m) features")
    b.add_argument("--modality", required=True, metavar="M", help="modality of the gallery features")
    b.add_argument("--out", required=True, metavar="INDEX", help="index directory to write")
    b.add_argument("--kind", choices=("exact", "ivf", "hnsw"), default="exact",
                   help="exact inner product (default), ivf (IVF-flat) or hnsw")
    b.add_argument("--split", choices=("train", "val", "test"), default="test",
                   help="feature-set split to index [test]")
    b.add_argument("--ids", metavar="FILE", type=existing_path("--ids", noun="ids file"), help="with a .npy: text file of item ids, one per line [row numbers]")
    b.add_argument("--labels", metavar="FILE.npy", type=existing_path("--labels", noun="labels file"), help="with a .npy: (N,) class ids or (N, C) multi-hot labels")
    b.add_argument("--nlist", type=_bounded("--nlist"), help="ivf: number of lists [about sqrt(N)]")
    b.add_argument("--nprobe", type=_bounded("--nprobe"), help="ivf: lists scanned per query by default [nlist/64]")
    b.add_argument("--hnsw-m", type=_bounded("--hnsw-m"), default=32, help="hnsw: links per node [32]")
    b.add_argument("--ef-construction", type=_bounded("--ef-construction"), default=40,
                   help="hnsw: construction beam [40]")
    b.add_argument("--ef-search", type=_bounded("--ef-search"), default=128, help="hnsw: default search beam [128]")
    b.add_argument("--overwrite", action="store_true", help="replace an existing index directory")
    i = sub.add_parser("info", help="describe an index")
    i.add_argument("index", metavar="INDEX", type=existing_path("INDEX", "dir", "index directory"))
    return p


def _bounded(flag: str):
    """``flag``'s integer type, bounded by :data:`cvs_tf.retrieval.index.BOUNDS` (docs/serving.md)."""
    return bounded_int(flag, *BOUNDS[flag.lstrip("-").replace("-", "_")])


def parse_args(argv: Sequence[str] | None = None):
    return build_parser().parse_args(argv)


def _read_ids(path: str, n: int) -> np.ndarray:
    try:
        ids = [line.rstrip("\r\n") for line in Path(path).read_text(encoding="utf-8-sig").splitlines()]
    except FileNotFoundError:
        raise CliError(f"{path}: no such ids file") from None
    except UnicodeDecodeError:
        raise CliError(f"{path}: ids file is not UTF-8 text") from None
    if len(ids) != n:
        raise CliError(f"{path}: {len(ids)} ids for {n} feature rows")
    if len(set(ids)) != n:
        raise CliError(f"{path}: ids are not unique")
    return np.asarray(ids)


def _gallery_labels(path: str, n: int, known: list[str] | None):
    """``(labels, classes, label_kind)`` of ``--labels``: checked by the shared label check (an (N, 1) column is class ids)."""
    from cvs_tf.data.manifest import as_labels

    try:
        labels, kind = as_labels(load_array(path, "labels"), n)
    except ValueError as exc:
        raise CliError(f"{path}: {exc}") from None
    top = labels.shape[1] if kind == "multi" else (int(labels.max()) + 1 if labels.size else 0)
    fits = known and (top == len(known) if kind == "multi" else top <= len(known))
    return labels, (known if fits else None), kind


def gallery_from_args(args, export):
    """(features, ids, labels, classes, label_kind, source) of the gallery named on the command line."""
    from cvs_tf.data.registry import dataset_path
    from cvs_tf.data.store import load_feature_set, sha256_file

    spec = args.features
    if spec.endswith((".npy", ".npz")) or Path(spec).is_file():
        x = load_matrix(spec, "features")
        ids = _read_ids(args.ids, len(x)) if args.ids else None
        labels, classes, label_kind = None, None, None
        if args.labels:
            labels, classes, label_kind = _gallery_labels(args.labels, len(x), export.classes)
        source = {"type": "npy", "file": Path(spec).name, "sha256": sha256_file(spec)}
        return x, ids, labels, classes, label_kind, source
    if args.ids or args.labels:
        raise CliError("--ids and --labels apply to a .npy gallery; a feature set brings its own")
    fs = load_feature_set(dataset_path(spec))
    x, y = fs.x(args.modality, args.split), fs.y(args.modality, args.split)
    ids = np.asarray([f"{args.split}:{r}" for r in range(len(x))])
    source = {"type": "featureset", "dataset": fs.name, "split": args.split, "modality": args.modality,
              "manifest_sha256": fs.manifest_sha256}
    if Path(spec).is_dir():
        source["path_from_index"] = os.path.relpath(Path(spec).resolve(), Path(args.out).resolve())
    else:
        source["name"] = spec
    return x, ids, np.asarray(y), fs.classes, fs.label_kind, source


def _build(args) -> int:
    from cvs_tf.retrieval.index import INDEX_KIND
    from cvs_tf.utils.output import OutputDir

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CliError(f"{out}: exists and is not a directory")
    if args.kind != "ivf" and (args.nlist is not None or args.nprobe is not None):
        raise CliError(f"--nlist/--nprobe apply to --kind ivf, not {args.kind}")
    with OutputDir(out, INDEX_KIND, overwrite=args.overwrite, error=CliError) as dest:  # before the (slow) embedding
        index = _embed_and_index(args, out)
        index.write_to(dest)
    extra = ", ".join(f"{k} {v}" for k, v in index.params.items())
    print(f"indexed {index.count} {args.modality} items (D = {index.dim}, {args.kind}{', ' + extra if extra else ''}) "
          f"to {out}; {_size(index.nbytes())}")
    return 0


def _embed_and_index(args, out: Path):
    from cvs_tf.retrieval.index import Index, RetrievalError
    from cvs_tf.serving.export import Export

    export = Export(args.export_dir)
    export.input_dim(args.modality)                  # the export has this modality
    x, ids, labels, classes, label_kind, source = gallery_from_args(args, export)
    emb = export.embed(args.modality, x)
    identity = dict(export.identity, path_from_index=os.path.relpath(export.path.resolve(), out.resolve()))
    try:
        index = Index.build(emb, args.kind, ids=ids, labels=labels, classes=classes, modality=args.modality,
                            export=identity, source=source, nlist=args.nlist, nprobe=args.nprobe,
                            hnsw_m=args.hnsw_m, ef_construction=args.ef_construction, ef_search=args.ef_search)
    except RetrievalError as exc:
        raise CliError(str(exc)) from None
    index.label_kind = label_kind if labels is not None else None
    return index


def _info(args) -> int:
    from cvs_tf.retrieval.index import Index

    ix = Index.load(args.index)
    exp = ix.export or {}
    src = ix.source or {}
    print(f"{args.index}: {ix.kind} index of {ix.count} {ix.modality} items, D = {ix.dim}, "
          f"{_size(ix.nbytes())}; params {ix.params or '-'}")
    print(f"  export {str(exp.get('sha256'))[:12]} (run {exp.get('run')}, stage {exp.get('stage')}, "
          f"{exp.get('space')}); source {src.get('type')} "
          f"{src.get('dataset') or src.get('file')}{':' + src['split'] if src.get('split') else ''}; "
          f"labels {'yes' if ix.labels is not None else 'no'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return {"build": _build, "info": _info}[args.command](args)
