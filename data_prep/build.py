"""What the Tux-12, Digits-10 and Furniture builds share: their encoders and raw-file staging, extraction through ``cvs_tf.data.extract``, and the last step (compare, write, report)."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from cvs_tf.data.store import save_feature_set
from cvs_tf.utils.atomic import make_temporary
from cvs_tf.utils.cli import CliError
from data_prep import tuxdigits_common as common

#: the registry encoder (``cvs_tf.data.encoders``) of each modality the builds extract
ENCODERS = {"image": "efficientnet-lite0", "text": "minilm", "speech": "whisper-base", "audio": "mfcc",
            "3d": "shape-descriptors"}
#: the encoders that are a recipe, not a model: each build records the recipe's info itself
RECIPES = ("mfcc", "shape-descriptors")


class BaseExtractors:
    """The real encoders, built on first use, and the staging of raw files into the formats ``extract`` reads;
    ``info`` collects what each encoder was (for provenance).

    A test may pass an object with the same methods (``encoders``, ``stage_image``, ``stage_audio``,
    ``stage_mesh``) instead.
    """

    def __init__(self, cache: Path, threads: int, log: common.Progress):
        from data_prep import extractors as ex

        self.ex = ex
        self.cache, self.threads, self.log = cache, threads, log
        self.info: dict[str, dict] = {"audio": ex.MFCC_INFO}

    def encoders(self, modalities: Sequence[str]) -> dict:
        """``{modality: Encoder}``: :data:`ENCODERS` from cvs_tf's registry, run on ``threads`` CPU threads."""
        from cvs_tf.data.encoders import build_encoder

        encs = {m: build_encoder(ENCODERS[m]) for m in modalities}
        import torch

        torch.set_num_threads(self.threads)  # after the models' constructors, which set their own default
        # the provenance the builds recorded before they used extract: each model's own info
        self.info.update({m: e.model.info for m, e in encs.items() if ENCODERS[m] not in RECIPES})
        return encs

    def stage_image(self, src: Path, dest: Path) -> Path:
        """A picture ``extract`` reads: a PNG as it is; an SVG rendered (resvg) to a lossless PNG at ``dest``."""
        if src.suffix.lower() != ".svg":
            return src
        self.ex.render_svg(src).save(dest, format="PNG")
        return dest

    def stage_audio(self, src: Path, dest: Path) -> Path:
        """A clip (ogg, wav, gsm) decoded by PyAV to 16 kHz mono, written as a float32 WAV that
        ``extract`` reads back sample for sample."""
        from scipy.io import wavfile

        wavfile.write(dest, self.ex.SAMPLE_RATE, self.ex.load_audio(src))
        return dest

    def stage_mesh(self, vertices: np.ndarray, faces: np.ndarray, dest: Path) -> Path:
        """A mesh given as arrays, written as an OFF file at ``dest`` that reads back bit for bit
        (17 significant digits per float64 coordinate)."""
        with open(dest, "w", encoding="ascii") as f:
            f.write(f"OFF\n{len(vertices)} {len(faces)} 0\n")
            np.savetxt(f, np.asarray(vertices, np.float64), fmt="%.17g")
            np.savetxt(f, np.column_stack([np.full(len(faces), 3), faces]), fmt="%d")
        return dest


@contextlib.contextmanager
def scratch(cache: Path, name: str) -> Iterator[Path]:
    """A private folder in ``cache`` for a build's staged media, manifest and extract shards, removed
    afterwards; one that a killed build left behind is removed by the next (pid-marked, as every temporary)."""
    cache.mkdir(parents=True, exist_ok=True)
    folder = make_temporary(cache / f"{name}-extract")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def extract_spec(spec_path: Path, encoders: Mapping, work: Path, log: Callable[[str], None]) -> dict:
    """``{modality: {item id: feature row}}`` of a manifest or folder, through ``cvs_tf.data.extract``.

    One batch per modality: every encoder gets the whole list at once, as the builds' direct calls
    did before they used ``extract``, so the features do not depend on a batch size.
    """
    from cvs_tf.data.extract import encode_spec
    from cvs_tf.data.extract_spec import read_spec

    spec = read_spec(spec_path)
    n = max(len(v) for v in spec.items.values())
    results = encode_spec(spec, encoders, work, batch_size=n, on_error="fail", progress=False, report=log)
    out = {}
    for m, (x, ids, _) in results.items():
        if not np.isfinite(x).all():
            raise CliError(f"{m}: the encoder returned non-finite values")
        out[m] = dict(zip(ids, np.asarray(x, np.float32)))
    return out


def extract_rows(rows: Sequence[dict], encoders: Mapping, folder: Path, log: Callable[[str], None]) -> dict[str, np.ndarray]:
    """Features of ``rows`` (a JSON manifest's items: ``id``, ``class``, one value per modality, file paths
    absolute) through :func:`extract_spec`: modality -> (N, d) float32, rows in order. The manifest is
    written as ``folder/items.json``, the shards go to ``folder/partial``."""
    spec = folder / "items.json"
    spec.write_text(json.dumps(list(rows), ensure_ascii=False, indent=1), encoding="utf-8")
    feats = extract_spec(spec, encoders, folder / "partial", log)
    return {m: np.stack([feats[m][r["id"]] for r in rows]) for m in encoders}


def publish(args, name: str, data: dict, classes: list[str], *, pairing: str, provenance: Mapping,
            val_fraction: float, log: Callable[[str], None]) -> int:
    """Write ``data`` (with its ``item_ids`` entry) at ``args.out``; exit status 0, or 1 when the
    set differs from ``args.compare`` beyond float16 rounding (the set is written either way)."""
    ok, report = True, []
    if args.compare:
        ok, report = common.compare_feature_sets(data, args.compare, subset=args.limit is not None)
    item_ids = data.pop("item_ids")
    validation = {"fraction": val_fraction, "seed": args.seed, "stratified": True, "carved_from": "train",
                  "paired": pairing == "instance"}
    out = save_feature_set(args.out, name, data, classes, pairing=pairing, provenance=dict(provenance),
                           validation=validation, feature_dtype="float16",
                           extra={"item_ids": item_ids}, overwrite=args.overwrite)
    log(f"wrote {out}")
    for line in report:
        print(f"compare: {line}")
    if args.compare:
        print(f"compare with {args.compare}: {'equal within float16 rounding' if ok else 'MISMATCH'}")
    return 0 if ok else 1
