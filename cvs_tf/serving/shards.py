"""Feature shards in, embedding shards out: the file formats of ``python -m cvs_tf.embed_beam`` and its merge step.

An **input shard** (one file matched by the ``--features`` glob; ``*.ids.txt`` files are skipped):

    NAME.npz     arrays ``features`` (n, d_m) real numbers and ``ids`` (n,) (strings or integers)
    NAME.npy     features (n, d_m); ids in ``NAME.ids.txt`` beside it (UTF-8, one per line), else
                 ``NAME.npy:ROW``

An **embedding shard** ``PREFIX-SSSSS-of-NNNNN.npz`` (one per input shard, in sorted path order):
arrays ``embeddings`` (n, D) float32 (the export's unit rows), ``ids`` (n,) unicode, in the input
shard's row order, and ``meta``, a JSON string (format, version, modality, shard, num_shards, the
write's token, the source file, the export's identity and path). This module needs no Beam: the
pipeline (:mod:`cvs_tf.serving.beam_pipeline`) reads and writes through it, and
:func:`merge_shards` turns a complete set into a :class:`cvs_tf.retrieval.Index`.
"""

from __future__ import annotations

import glob
import io
import json
import os
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cvs_tf.data.store import all_finite

SHARD_FORMAT = "cvs_tf.embed_beam"
SHARD_FORMAT_VERSION = 1
IDS_SUFFIX = ".ids.txt"


class ShardError(ValueError):
    """A feature or embedding shard is missing, unreadable, or does not fit the export."""


@dataclass(frozen=True)
class InputShard:
    """One input shard, checked against the export: its position, file, rows and where its ids are."""

    index: int
    path: str
    rows: int
    ids_file: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------- input shards


def match_inputs(pattern: str) -> list[str]:
    """The ``.npy``/``.npz`` files matched by ``pattern`` (sorted); ShardError when there are none."""
    paths = sorted(p for p in glob.glob(os.path.expanduser(pattern), recursive=True)
                   if Path(p).is_file() and p.endswith((".npy", ".npz")))
    if not paths:
        raise ShardError(f"no feature shard (.npy or .npz file) matches {pattern!r}")
    return paths


def _npz_header(path: str, key: str) -> tuple[tuple, np.dtype]:
    """(shape, dtype) of array ``key`` of an .npz, from its header only."""
    with zipfile.ZipFile(path) as z:
        if f"{key}.npy" not in z.namelist():
            raise ShardError(f"{path}: no array {key!r} (an .npz shard holds 'features' and 'ids')")
        with z.open(f"{key}.npy") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(f)
    return shape, dtype


def _check_features(path: str, shape: tuple, dtype: np.dtype, modality: str, input_dim: int) -> int:
    if len(shape) != 2:
        raise ShardError(f"{path}: features must be 2-D (n, {input_dim}), got shape {shape}")
    if shape[1] != input_dim:
        raise ShardError(f"{path}: {modality} features have dimension {shape[1]}; the export expects {input_dim}")
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise ShardError(f"{path}: features must be real numbers, got dtype {dtype}")
    if shape[0] == 0:
        raise ShardError(f"{path}: no rows")
    return int(shape[0])


def _read_ids_file(path: str, rows: int) -> np.ndarray:
    try:
        ids = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise ShardError(f"{path}: ids file is not UTF-8 text") from None
    if len(ids) != rows:
        raise ShardError(f"{path}: {len(ids)} ids for {rows} feature rows")
    return np.asarray(ids, dtype=str)


def _inspect(index: int, path: str, modality: str, input_dim: int) -> InputShard:
    if path.endswith(".npz"):
        rows = _check_features(path, *_npz_header(path, "features"), modality, input_dim)
        ids_shape, _ = _npz_header(path, "ids")
        if tuple(ids_shape) != (rows,):
            raise ShardError(f"{path}: ids have shape {tuple(ids_shape)}; need ({rows},)")
        return InputShard(index, path, rows)
    x = np.load(path, mmap_mode="r", allow_pickle=False)
    rows = _check_features(path, x.shape, x.dtype, modality, input_dim)
    ids_file = path[: -len(".npy")] + IDS_SUFFIX
    if not Path(ids_file).is_file():
        return InputShard(index, path, rows)
    _read_ids_file(ids_file, rows)
    return InputShard(index, path, rows, ids_file)


def plan_inputs(pattern: str, modality: str, input_dim: int) -> list[InputShard]:
    """Every input shard matched by ``pattern``, its header checked against the modality's input dim."""
    shards = []
    for i, path in enumerate(match_inputs(pattern)):
        try:
            shards.append(_inspect(i, path, modality, input_dim))
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise ShardError(f"{path}: unreadable ({' '.join(str(exc).split())[:160]})") from None
        except ValueError as exc:
            if isinstance(exc, ShardError):
                raise
            raise ShardError(f"{path}: unreadable ({' '.join(str(exc).split())[:160]})") from None
    return shards


def read_input(shard: InputShard) -> tuple[np.ndarray, np.ndarray]:
    """``(features (n, d_m) float32, ids (n,) str)`` of one planned shard; ShardError on NaN/Inf."""
    if shard.path.endswith(".npz"):
        with np.load(shard.path, allow_pickle=False) as z:
            x, ids = np.asarray(z["features"]), np.asarray(z["ids"]).astype(str)
    else:
        x = np.load(shard.path, allow_pickle=False)
        name = Path(shard.path).name
        ids = (_read_ids_file(shard.ids_file, shard.rows) if shard.ids_file
               else np.asarray([f"{name}:{r}" for r in range(len(x))]))
    if x.shape[0] != shard.rows:
        raise ShardError(f"{shard.path}: holds {x.shape[0]} rows, {shard.rows} when the run started (changed?)")
    x = np.asarray(x, dtype=np.float32)
    if not all_finite(x):
        raise ShardError(f"{shard.path}: features contain NaN or Inf (or values beyond float32)")
    if len(set(ids.tolist())) != len(ids):
        raise ShardError(f"{shard.path}: ids are not unique")
    return x, ids


# --------------------------------------------------------------------------- embedding shards


def output_name(prefix: str, shard: int, num_shards: int) -> str:
    """``PREFIX-SSSSS-of-NNNNN.npz``."""
    return f"{prefix}-{shard:05d}-of-{num_shards:05d}.npz"


def existing_outputs(prefix: str) -> list[str]:
    """Embedding shards already written under ``prefix`` (any count)."""
    return sorted(glob.glob(f"{glob.escape(prefix)}-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9].npz"))


def write_output(path: str | os.PathLike, embeddings: np.ndarray, ids: np.ndarray, meta: dict) -> None:
    """Write one embedding shard (the caller writes into a temporary directory and renames)."""
    buf = io.BytesIO()
    np.savez(buf, embeddings=np.asarray(embeddings, dtype=np.float32), ids=np.asarray(ids, dtype=str),
             meta=np.asarray(json.dumps(meta, sort_keys=True)))
    Path(path).write_bytes(buf.getvalue())


def read_output(path: str) -> tuple[dict, np.ndarray, np.ndarray]:
    """``(meta, embeddings, ids)`` of one embedding shard, checked for its format and shapes."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta, emb, ids = json.loads(str(z["meta"])), np.asarray(z["embeddings"]), np.asarray(z["ids"]).astype(str)
    except KeyError as exc:
        raise ShardError(f"{path}: not an embedding shard (no {exc.args[0]!r})") from None
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise ShardError(f"{path}: unreadable embedding shard ({' '.join(str(exc).split())[:160]})") from None
    if not isinstance(meta, dict) or meta.get("format") != SHARD_FORMAT:
        raise ShardError(f"{path}: not an embedding shard of {SHARD_FORMAT}")
    if meta.get("format_version") != SHARD_FORMAT_VERSION:
        raise ShardError(f"{path}: unsupported format_version {meta.get('format_version')!r}")
    if emb.ndim != 2 or ids.shape != (emb.shape[0],):
        raise ShardError(f"{path}: embeddings {emb.shape} and ids {ids.shape} do not fit")
    return meta, emb, ids


def _check_set(paths: list[str], metas: list[dict]) -> None:
    """One complete write: the same token, export and modality; shards 0..N-1 each once."""
    first = metas[0]
    for path, meta in zip(paths, metas):
        for key in ("token", "modality", "num_shards"):
            if meta.get(key) != first.get(key):
                raise ShardError(f"{path}: {key} {meta.get(key)!r} differs from {paths[0]}'s {first.get(key)!r} "
                                 "(shards of different embed_beam runs)")
        if (meta.get("export") or {}).get("sha256") != (first.get("export") or {}).get("sha256"):
            raise ShardError(f"{path}: embedded with another export than {paths[0]}")
    n = int(first["num_shards"])
    have = sorted(int(m["shard"]) for m in metas)
    if have != list(range(n)):
        missing = sorted(set(range(n)) - set(have))
        what = f"shard {missing[0]} of {n} is missing" if missing else "a shard is given twice"
        raise ShardError(f"incomplete set of embedding shards: {what} ({len(paths)} files matched)")


def read_output_set(pattern: str) -> tuple[dict, np.ndarray, np.ndarray]:
    """``(meta of shard 0, embeddings (N, D), ids (N,))`` of a complete set matched by ``pattern``, in shard order."""
    paths = sorted(p for p in glob.glob(os.path.expanduser(pattern)) if p.endswith(".npz") and Path(p).is_file())
    if not paths:
        raise ShardError(f"no embedding shard (.npz file) matches {pattern!r}")
    shards = [read_output(p) for p in paths]
    _check_set(paths, [m for m, _, _ in shards])
    shards.sort(key=lambda s: int(s[0]["shard"]))
    emb = np.concatenate([e for _, e, _ in shards])
    ids = np.concatenate([i for _, _, i in shards])
    if len(np.unique(ids)) != len(ids):
        dup = next(i for i, c in zip(*np.unique(ids, return_counts=True)) if c > 1)
        raise ShardError(f"id {dup!r} occurs more than once across the shards (ids must be unique in a gallery)")
    return shards[0][0], emb, ids


def _export_for(meta: dict, export_dir: str | os.PathLike | None):
    """The export the shards were embedded with: ``export_dir`` or the recorded path, checked by identity."""
    from cvs_tf.serving.export import Export

    where = export_dir or meta.get("export_path")
    if where is None or not (Path(where) / "export.json").is_file():
        raise ShardError(f"export {where} of the shards is missing (moved or deleted?); pass --export DIR")
    export = Export(where)
    want = (meta.get("export") or {}).get("sha256")
    if export.sha256 != want:
        raise ShardError(f"{where}: is not the export the shards were embedded with "
                         f"(export.json sha256 {export.sha256[:12]}, shards say {str(want)[:12]})")
    return export


def merge_shards(pattern: str, out: str | os.PathLike, *, kind: str = "exact", export_dir=None,
                 nlist: int | None = None, nprobe: int | None = None, overwrite: bool = False):
    """Index a complete set of embedding shards (the ``python -m cvs_tf.index`` format); returns the saved Index.

    The index records the export (its identity and path from the index, as ``cvs_tf.index build``
    does), so ``python -m cvs_tf.search INDEX`` embeds queries with it.
    """
    from cvs_tf.retrieval.index import INDEX_KIND, Index
    from cvs_tf.utils.output import refusal

    out = Path(out)
    if msg := refusal(out, INDEX_KIND, overwrite=overwrite):  # before reading the shards (save checks again)
        raise ShardError(msg)
    meta, emb, ids = read_output_set(pattern)
    export = _export_for(meta, export_dir)
    if emb.shape[1] != export.dim:
        raise ShardError(f"shards hold D = {emb.shape[1]} embeddings; the export has D = {export.dim}")
    identity = dict(export.identity, path_from_index=os.path.relpath(export.path.resolve(), out.resolve()))
    source = {"type": "embed_beam", "shards": int(meta["num_shards"]), "token": meta["token"],
              "pattern": Path(pattern).name, "inputs": meta.get("inputs")}
    index = Index.build(emb, kind, ids=ids, modality=meta["modality"], export=identity, source=source,
                        classes=export.classes, nlist=nlist, nprobe=nprobe)
    index.save(out, overwrite=overwrite)
    return index
