"""``python -m cvs_tf.data extract SPEC --out FS``: raw media (pictures, texts, WAV sounds, meshes) to a feature set, resumable.

Each modality's items are encoded in fixed batches (batch ``b`` holds items ``b*B .. b*B+B-1`` of
the spec's order); every finished batch is saved as a shard under ``.FS.extract-partial/`` beside
the output (written to a temporary file, then renamed). A rerun after a kill reuses the shards of
the same spec, encoders and batch size, and encodes only the missing batches, so its result is
the uninterrupted run's. The features then go through the checks of ``import`` and are written
atomically as one feature set; the partial folder is removed only after that.

An item an encoder cannot use (a corrupt image, an empty text, a silent or truncated WAV, a
broken mesh) stops the run with one line naming the file (``on_error="fail"``), or is dropped
and reported (``on_error="skip"``; in an instance-paired set the item is dropped from every
modality). The skipped items are listed in the manifest's ``provenance.skipped``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from cvs_tf.data.encoders import Encoder, ItemError, build_encoder, encoder_kind
from cvs_tf.data.extract_spec import Spec, modality_kind, read_spec
from cvs_tf.data.manifest import FeatureSetError
from cvs_tf.data.splits import stratified_holdout
from cvs_tf.utils.atomic import fault_point
from cvs_tf.utils.lock import RunDirLock

VERSION = "1"
ON_ERROR = ("fail", "skip")
DEFAULT_BATCH = 32
DEFAULT_TEST_FRACTION = 0.2


def partial_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.extract-partial"


def resolve_encoders(spec: Spec, chosen: Mapping[str, str]) -> dict[str, str]:
    """``{modality: encoder spec}``: ``chosen`` (``--encoder``), else the default of the modality's kind."""
    from cvs_tf.data.encoders import DEFAULTS

    unknown = sorted(set(chosen) - set(spec.modalities))
    if unknown:
        raise FeatureSetError(f"--encoder: no modality {unknown[0]!r} in {spec.path} (has {', '.join(spec.modalities)})")
    out = {}
    for m in spec.modalities:
        if m in chosen:
            encoder_kind(chosen[m])  # unknown names fail here, before any work
            out[m] = chosen[m]
        else:
            out[m] = DEFAULTS[modality_kind(spec, m)]
        spec.kinds[m] = encoder_kind(out[m])
    return out


def read_item(enc: Encoder, spec: Spec, value: str, from_file: bool):
    """One raw item for ``enc``; a text given as a file is read first. Raises ItemError."""
    if enc.kind == "text" and from_file:
        try:
            value = (spec.base / value).read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise ItemError("not UTF-8 text") from None
    elif enc.kind != "text":
        if not value.strip():
            raise ItemError("no file given")
        if not (spec.base / value).is_file():
            raise ItemError("no such file")
    return enc.read(value, spec.base)


def _where(spec: Spec, enc: Encoder, value: str, from_file: bool) -> str:
    return str(spec.base / value) if (from_file or enc.kind != "text") else f"text {value[:40]!r}"


def _save_shard(path: Path, **arrays) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def _encode_batch(enc: Encoder, spec: Spec, m: str, batch: list, on_error: str):
    ids, items, skipped = [], [], []
    for item, value, from_file in batch:
        try:
            items.append(read_item(enc, spec, value, from_file))
            ids.append(item)
        except ItemError as exc:
            where = _where(spec, enc, value, from_file)
            if on_error == "fail":
                raise FeatureSetError(f"{where}: {m} item {item!r}: {exc} (--on-error skip drops such items)") from None
            skipped.append({"id": item, "modality": m, "file": where, "reason": str(exc)})
    x = enc.encode(items) if items else np.zeros((0, enc.dim), np.float32)
    return np.asarray(x, np.float32), ids, skipped


def encode_modality(enc: Encoder, spec: Spec, m: str, work: Path, batch_size: int, on_error: str,
                    progress: bool) -> tuple[np.ndarray, list[str], list[dict]]:
    """Features, ids and skipped items of modality ``m``, reusing the shards in ``work/m``."""
    (work / m).mkdir(parents=True, exist_ok=True)
    todo = spec.items[m]
    bar = _progress_bar(m, len(todo)) if progress else None
    xs, ids, skipped = [], [], []
    for b, start in enumerate(range(0, len(todo), batch_size)):
        shard = work / m / f"batch-{b:06d}.npz"
        if shard.is_file():
            with np.load(shard, allow_pickle=False) as z:
                x, got, skip = z["features"], [str(i) for i in z["ids"]], json.loads(str(z["skipped"]))
        else:
            x, got, skip = _encode_batch(enc, spec, m, todo[start:start + batch_size], on_error)
            _save_shard(shard, features=x, ids=np.array(got, dtype=str), skipped=np.array(json.dumps(skip)))
            fault_point("extract-shard")
        xs.append(x)
        ids += got
        skipped += skip
        if bar is not None:
            bar.update(min(start + batch_size, len(todo)))
    return np.concatenate(xs) if xs else np.zeros((0, enc.dim), np.float32), ids, skipped


def _progress_bar(m: str, total: int):
    import keras

    print(f"extract: {m}: {total} items", flush=True)
    return keras.utils.Progbar(total, unit_name="item", verbose=1 if sys.stdout.isatty() else 2)


def _state_key(spec: Spec, encoders: dict[str, Encoder], batch_size: int) -> dict:
    return {"version": VERSION, "spec_sha256": spec.sha256, "batch_size": batch_size,
            "encoders": {m: {"spec": e.spec, "weights_sha256": e.info().get("weights_sha256")} for m, e in encoders.items()}}


def prepare_work(work: Path, key: dict, report: Callable[[str], None] | None) -> bool:
    """Keep ``work``'s shards when they were made with ``key``; start afresh otherwise. True when resuming."""
    state = work / "state.json"
    if state.is_file():
        try:
            same = json.loads(state.read_text()) == key
        except ValueError:
            same = False
        if same:
            return True
        if report:
            report(f"extract: {work} was made from another spec, encoder or batch size; starting over")
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / "state.json").write_text(json.dumps(key, indent=2))
    return False


def encode_spec(spec: Spec, encoders: Mapping[str, Encoder], work: Path, *, batch_size: int = DEFAULT_BATCH,
                on_error: str = "fail", progress: bool = True, report: Callable[[str], None] | None = print) -> dict:
    """``{modality: (features, ids, skipped)}`` of every item of ``spec``, encoded by ``encoders`` in batches whose
    finished shards are kept in ``work`` (reused by a rerun with the same spec, encoders and batch size).

    What ``extract`` runs before it writes the set; the ``data_prep/`` builders call it with their
    own manifests and apply their own splits.
    """
    if prepare_work(Path(work), _state_key(spec, encoders, batch_size), report) and report:
        report(f"extract: resuming from the finished batches in {work}")
    return {m: encode_modality(e, spec, m, Path(work), batch_size, on_error, progress) for m, e in encoders.items()}


def labels_of(spec: Spec, ids: list[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(spec.classes)}
    if spec.multi:
        y = np.zeros((len(ids), len(index)), np.uint8)
        for r, i in enumerate(ids):
            y[r, [index[c] for c in spec.classes_of[i]]] = 1
        return y
    return np.array([index[spec.classes_of[i][0]] for i in ids], dtype=np.int64)


def split_items(spec: Spec, ids: list[str], test_fraction: float, seed: int) -> list[str]:
    """The split of each id: the spec's, else a seeded stratified carve-out of ``test_fraction`` as test."""
    if spec.split_of:
        return [spec.split_of[i] for i in ids]
    test = stratified_holdout(labels_of(spec, ids), test_fraction, seed) if ids else np.zeros(0, bool)
    return ["test" if t else "train" for t in test]


def lock(out: Path) -> RunDirLock:
    target = partial_dir(out)
    return RunDirLock(target, path=out.parent / f".{out.name}.extract.lock", noun="extraction", transient=True)


def _write_layout(spec: Spec, results: dict, root: Path, test_fraction: float, seed: int) -> list[dict]:
    """The import layout of the encoded items under ``root``; returns the skipped items."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    skipped = [s for _, _, skip in results.values() for s in skip]
    if spec.pairing == "instance":
        dropped = {s["id"] for s in skipped}
        keep = [i for i, _, _ in spec.items[spec.modalities[0]] if i not in dropped]
        splits = dict(zip(keep, split_items(spec, keep, test_fraction, seed)))
    for n, (m, (x, ids, _)) in enumerate(results.items()):
        if spec.pairing == "instance":
            row = {i: r for r, i in enumerate(ids)}
            rows = np.array([row[i] for i in keep], dtype=np.int64)
            x, ids = x[rows], keep
        else:
            splits = dict(zip(ids, split_items(spec, ids, test_fraction, seed + 7919 * n)))
        for s in ("train", "val", "test"):
            sel = [r for r, i in enumerate(ids) if splits[i] == s]
            if sel or s != "val":
                np.savez(root / f"{m}.{s}.npz", features=x[sel].reshape(len(sel), -1),
                         labels=labels_of(spec, [ids[r] for r in sel]), ids=np.array([ids[r] for r in sel], dtype=str))
    (root / "classes.txt").write_text("".join(f"{c}\n" for c in spec.classes), encoding="utf-8")
    return skipped


def _provenance(spec: Spec, encoders: dict[str, Encoder], skipped: list[dict], on_error: str,
                test_fraction: float, seed: int) -> dict:
    fmt = "folder layout DIR/<modality>/<class>/<file>" if spec.path.is_dir() else f"{spec.path.suffix[1:].upper()} manifest"
    return {
        "converter": "cvs_tf.data.extract",
        "converter_version": VERSION,
        "source_files": [spec.path.name],
        "source_sha256": {spec.path.name: spec.sha256},
        "source_format": fmt + (" (sha256 over the listing: path, size, mtime)" if spec.path.is_dir() else ""),
        "encoders": {m: e.info() for m, e in encoders.items()},
        "on_error": on_error,
        "skipped": skipped,
        "test_split": ({"note": "given by the spec"} if spec.split_of else
                       {"fraction": test_fraction, "seed": seed, "stratified": True}),
    }


def extract(spec_path: str | Path, out: str | Path, *, encoders: Mapping[str, str] | None = None,
            batch_size: int = DEFAULT_BATCH, on_error: str = "fail", val_fraction: float | None = None,
            test_fraction: float = DEFAULT_TEST_FRACTION, seed: int = 0, name: str | None = None,
            progress: bool = True, report: Callable[[str], None] | None = print) -> Path:
    """Encode the items of ``spec_path`` and write them as the feature set ``out`` (see the module docstring).

    ``encoders``: ``{modality: encoder spec}`` overriding the kind's default; ``test_fraction``: the
    stratified test carve-out when the spec gives no split; ``val_fraction`` and ``seed``: as ``import``.
    """
    from cvs_tf.data.importer import import_layout

    out = Path(out)
    if on_error not in ON_ERROR:
        raise FeatureSetError(f"on_error: must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
    if not 0 < test_fraction < 1:
        raise FeatureSetError(f"test_fraction: must be in (0, 1), got {test_fraction}")
    if out.exists():
        raise FeatureSetError(f"{out}: output directory already exists (remove it first)")
    spec = read_spec(spec_path)
    specs = resolve_encoders(spec, encoders or {})
    out.parent.mkdir(parents=True, exist_ok=True)
    held = lock(out)
    held.acquire()
    try:
        encs = {m: build_encoder(s) for m, s in specs.items()}
        work = partial_dir(out)
        results = encode_spec(spec, encs, work, batch_size=batch_size, on_error=on_error, progress=progress, report=report)
        skipped = _write_layout(spec, results, work / "layout", test_fraction, seed)
        for s in skipped if report else ():
            report(f"extract: skipped {s['modality']} item {s['id']!r} ({s['file']}): {s['reason']}")
        import_layout(work / "layout", out, val_fraction=val_fraction, seed=seed, pairing=spec.pairing,
                      name=name or spec.path.resolve().stem.lower(), report=report,
                      provenance=_provenance(spec, encs, skipped, on_error, test_fraction, seed))
        shutil.rmtree(work)
    finally:
        held.release()
    return out
