"""``export --with-encoders``: SavedModels from raw input (pixels, strings) through the feature set's encoder and the space.

The feature set of a run made by ``python -m cvs_tf.data extract`` records each modality's
encoder in ``provenance.encoders``. For a Keras-native encoder (image backbones, hashed or
keras-hub text) the export adds ``DIR/<modality>.raw/``, a SavedModel whose ``serve`` endpoint
takes the raw input and returns ``l2_normalize(branch_m(encoder(raw)))``; its export.json entry
gains ``encoder`` (the recorded spec plus ``savedmodel``, ``input`` and ``weights_sha256``). For
other encoders (MFCC audio, mesh descriptors) only the spec is recorded, and
``python -m cvs_tf.search --query-raw`` runs the encoder in front of the feature SavedModel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cvs_tf.serving.checks import ExportError

RAW_SUFFIX = ".raw"


def recorded_encoders(dataset) -> dict:
    """``{modality: encoder record}`` of a feature set made by ``extract``; ExportError otherwise."""
    encoders = ((dataset.manifest if dataset is not None else {}).get("provenance") or {}).get("encoders")
    if not isinstance(encoders, dict) or not encoders:
        raise ExportError("--with-encoders: the run's feature set records no encoders (only sets made by "
                          "python -m cvs_tf.data extract do)")
    return encoders


def _build(record: dict, modality: str):
    from cvs_tf.data.encoders import EncoderError, build_encoder

    try:
        enc = build_encoder(str(record["encoder"]))
    except EncoderError as exc:
        raise ExportError(f"--with-encoders: {modality}: {exc}") from None
    want, got = record.get("weights_sha256"), enc.info().get("weights_sha256")
    if want != got:
        raise ExportError(f"--with-encoders: {modality}: encoder {enc.spec} now has other weights than at extraction "
                          f"(weights_sha256 {str(got)[:12]}, recorded {str(want)[:12]})")
    return enc


def _write_raw(model, modality: str, enc, path: Path) -> str:
    import keras

    from cvs_tf.models.base import l2n

    fn, spec, tracked, description = enc.raw_fn()
    archive = keras.export.ExportArchive()
    archive.track(model.branches[modality])
    archive.track(tracked)
    archive.add_endpoint("serve", lambda raw: l2n(model.branch_output(modality, fn(raw), training=False)),
                         input_signature=[spec])
    archive.write_out(str(path), verbose=False)
    return description


def add_raw_models(model, dataset, tmp: Path, modalities: dict) -> None:
    """Record each exported modality's encoder in ``modalities`` (export.json entries); write the raw SavedModels."""
    import tensorflow as tf

    from cvs_tf.utils.weights import loaded_weights_sha256

    for m, record in recorded_encoders(dataset).items():
        if m not in modalities:
            continue
        entry = {**record, "savedmodel": None}
        if record.get("keras_native"):
            enc = _build(record, m)
            entry["input"] = _write_raw(model, m, enc, tmp / f"{m}{RAW_SUFFIX}")
            entry["savedmodel"] = f"{m}{RAW_SUFFIX}"
            entry["savedmodel_weights_sha256"] = loaded_weights_sha256(tf.saved_model.load(str(tmp / f"{m}{RAW_SUFFIX}")))
        modalities[m]["encoder"] = entry


def raw_members(manifest: dict) -> list[str]:
    """The raw SavedModel folders an export.json lists."""
    return [e["encoder"]["savedmodel"] for e in manifest["modalities"].values()
            if isinstance(e.get("encoder"), dict) and e["encoder"].get("savedmodel")]


def embed_raw(export, modality: str, values: list[str], base: Path = Path(".")) -> np.ndarray:
    """Embeddings (N, D) of raw items (file paths, or texts) through the export's recorded encoder of ``modality``."""
    import tensorflow as tf

    from cvs_tf.data.encoders import ItemError
    from cvs_tf.data.encoders.raw import read_raw

    export._check_modality(modality)
    record = export.manifest["modalities"][modality].get("encoder")
    if not isinstance(record, dict):
        raise ExportError(f"{export.path}: export records no encoder for {modality!r} "
                          "(export a run on a set made by python -m cvs_tf.data extract, with --with-encoders)")
    try:
        if record.get("savedmodel"):
            items = [read_raw(record["kind"], v, base) for v in values]
            raw = tf.constant(items) if record["kind"] == "text" else np.stack(items).astype(np.float32)
            return export.raw_artifact(modality).serve(raw).numpy()
        enc = _build(record, modality)
        return export.embed(modality, enc.encode([enc.read(v, base) for v in values]))
    except ItemError as exc:
        raise ExportError(f"--query-raw: {exc}") from None
