"""Export a trained space's per-modality encoders as SavedModels (Keras ``ExportArchive``) and load them back.

An export directory holds one SavedModel per modality plus ``export.json``::

    DIR/export.json        modalities and their input dims, D, stage, run config, dataset manifest sha256
    DIR/<modality>/        SavedModel: endpoint ``serve`` (also ``serving_default``), features
                           (N, d_m) float32 -> L2-normalised embeddings (N, D) float32
    DIR/<modality>.onnx    only with ``formats=("savedmodel", "onnx")`` (needs tf2onnx)

The embedding is the ``independent`` protocol's: ``l2_normalize(branch_m(x))``, exactly what
:meth:`cvs_tf.models.base.CrossModalModel.embed` returns. The artifacts need only TensorFlow
(``tf.saved_model.load(DIR/<modality>).serve(x)``). The sha256 of ``export.json`` (with the
weights' sha256 inside it) is the export's identity, which gallery indexes record.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from cvs_tf.serving.checks import ExportError, check_export_manifest
from cvs_tf.serving.onnx import require_onnx, to_onnx
from cvs_tf.utils.artifacts import read_manifest
from cvs_tf.utils.fields import inside
from cvs_tf.utils.output import OutputDir, OutputKind, recover_previous
from cvs_tf.utils.weights import loaded_weights_sha256, weights_sha256  # noqa: F401 (re-exported: serving's public names)

EXPORT_FORMAT = "cvs_tf.export"
EXPORT_FORMAT_VERSION = 1
EXPORT_MANIFEST = "export.json"
ENDPOINT = "serve"
INPUT_NAME = "features"
#: largest |exported - model.embed| accepted when an export checks itself, on this many probe rows
TOLERANCE = 1e-6
CHECK_ROWS = 64
FORMATS = ("savedmodel", "onnx")


def _export_members(manifest: dict) -> list[str]:
    from cvs_tf.serving.raw_export import raw_members

    card = [manifest["model_card"]] if manifest.get("model_card") else []
    return ([v for e in manifest["modalities"].values() for v in (e["savedmodel"], e.get("onnx")) if v]
            + raw_members(manifest) + card)


#: what ``--overwrite`` may replace: a directory whose export.json is a cvs_tf export listing every entry
EXPORT_KIND = OutputKind("export", EXPORT_MANIFEST, EXPORT_FORMAT, _export_members)


# --------------------------------------------------------------------------- writing


def _serve_fn(model, modality: str):
    """The exported computation: the model's own branch output, L2-normalised (as ``model.embed``)."""
    from cvs_tf.models.base import l2n

    def serve(features):
        return l2n(model.branch_output(modality, features, training=False))

    return serve


def _write_savedmodel(model, modality: str, path: Path) -> None:
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model.branches[modality])
    spec = tf.TensorSpec((None, model.modality_dims[modality]), tf.float32, name=INPUT_NAME)
    archive.add_endpoint(ENDPOINT, _serve_fn(model, modality), input_signature=[spec])
    archive.write_out(str(path), verbose=False)


def _check_artifact(model, modality: str, path: Path, rows: int) -> float:
    """Largest |served - model.embed| over ``rows`` seeded probe rows (raises above TOLERANCE)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, model.modality_dims[modality])).astype(np.float32)
    loaded = tf.saved_model.load(str(path))       # keep a reference: its variables die with it
    served = loaded.serve(x).numpy()
    diff = float(np.max(np.abs(served - model.embed(modality, x).numpy())))
    if not diff <= TOLERANCE:
        raise ExportError(f"{path}: exported {modality} embeddings differ from model.embed by {diff:.3g} "
                          f"(> {TOLERANCE:g})")
    return diff


def _space_name(model, run_config: dict | None) -> str:
    """The run's space, else the registered space of the model's class, else the class name."""
    from cvs_tf.spaces import get_space, space_names

    space = ((run_config or {}).get("model") or {}).get("space")
    if space:
        return str(space)
    return next((n for n in space_names() if type(model) is get_space(n).model_class), type(model).__name__)


def _versions() -> dict:
    import keras
    import tensorflow as tf

    import cvs_tf

    return {"cvs_tf": cvs_tf.__version__, "tensorflow": tf.__version__, "keras": keras.__version__}


def _modality_entry(model, m: str, tmp: Path, formats: tuple[str, ...], check_rows: int) -> tuple[dict, float]:
    """Write modality ``m``'s artifacts into ``tmp``; ``(its export.json entry, |served - embed| max)``."""
    _write_savedmodel(model, m, tmp / m)
    diff = _check_artifact(model, m, tmp / m, check_rows) if check_rows else 0.0
    entry = {
        "input_dim": int(model.modality_dims[m]),
        "savedmodel": m,
        "endpoint": ENDPOINT,
        "signature": "serving_default",
        "input": INPUT_NAME,
        "output": "output_0",
        "weights_sha256": weights_sha256(model.branches[m]),
    }
    if "onnx" in formats:
        to_onnx(tmp / m, tmp / f"{m}.onnx", model.modality_dims[m], INPUT_NAME)
        entry["onnx"] = f"{m}.onnx"
    return entry, diff


def _manifest(model, modalities: dict, formats: tuple[str, ...], *, dataset, run_config, run_name,
              check_rows: int, max_diff: float) -> dict:
    stage = model.current_stage
    return {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "space": _space_name(model, run_config),
        "dim": int(model.dim),
        "embedding": "independent protocol: l2_normalize(branch_m(x)), as CrossModalModel.embed",
        "stage": stage + 1,
        "stage_name": model.stage_name(stage),
        "num_stages": model.num_stages,
        "modalities": modalities,
        "modality_order": list(modalities),
        "formats": list(formats),
        "dataset": None if dataset is None else {
            "name": dataset.name,
            "manifest_sha256": dataset.manifest_sha256,
            "classes": dataset.classes,
            "label_kind": dataset.label_kind,
            "data_label": dataset.data_label,
        },
        "run": {"name": run_name, "config": run_config},
        "check": {"rows": int(check_rows), "max_abs_diff": max_diff} if check_rows else None,
        "versions": _versions(),
    }


def _check_formats(formats: tuple[str, ...]) -> tuple[str, ...]:
    formats = tuple(dict.fromkeys(("savedmodel", *formats)))
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ExportError(f"unknown export format {bad[0]!r} (use {' or '.join(FORMATS)})")
    if "onnx" in formats:
        require_onnx()
    return formats


def export_model(
    model,
    out: str | os.PathLike,
    *,
    run_config: dict | None = None,
    dataset=None,
    run_name: str | None = None,
    formats: tuple[str, ...] = ("savedmodel",),
    overwrite: bool = False,
    check_rows: int = CHECK_ROWS,
) -> Path:
    """Write one SavedModel per modality trained so far (``model.modalities``) and ``export.json``.

    Args:
      model: a :class:`~cvs_tf.models.base.CrossModalModel` at the stage to export.
      out: export directory; written atomically (nothing is left behind on failure, and an
        existing export is replaced only with ``overwrite``).
      run_config: the run's ``config.json`` (recorded in export.json).
      dataset: the :class:`~cvs_tf.data.store.FeatureSet` the model was trained on (its name,
        classes, label kind and manifest sha256 are recorded).
      formats: ``("savedmodel",)`` or ``("savedmodel", "onnx")`` (ONNX goes through the SavedModel).
      check_rows: probe rows each artifact is checked on against ``model.embed`` (0 = no check).
    """
    out = Path(out)
    formats = _check_formats(formats)
    with OutputDir(out, EXPORT_KIND, overwrite=overwrite, error=ExportError) as dest:
        _write_export(dest, model, formats, dataset=dataset, run_config=run_config, run_name=run_name,
                      check_rows=check_rows)
    return out


def _write_export(dest: OutputDir, model, formats: tuple[str, ...], *, dataset, run_config, run_name,
                  check_rows: int, with_encoders: bool = False, run_dir=None) -> None:
    from cvs_tf.evaluation.calibration import calibrate_model
    from cvs_tf.report.card import MODEL_CARD, write_model_card

    seed = int(((run_config or {}).get("train") or {}).get("seed") or 0)
    calibration = None if dataset is None else calibrate_model(model, dataset, split="val", seed=seed)
    with dest.build() as tmp:
        modalities, max_diff = {}, 0.0
        for m in model.modalities:
            modalities[m], diff = _modality_entry(model, m, tmp, formats, check_rows)
            max_diff = max(max_diff, diff)
        if with_encoders:
            from cvs_tf.serving.raw_export import add_raw_models

            add_raw_models(model, dataset, tmp, modalities)
        manifest = _manifest(model, modalities, formats, dataset=dataset, run_config=run_config,
                             run_name=run_name, check_rows=check_rows, max_diff=max_diff)
        manifest["calibration"] = calibration  # score -> precision on the validation split (evaluation/calibration.py)
        if run_dir is not None:
            manifest["model_card"] = MODEL_CARD
        (tmp / EXPORT_MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if run_dir is not None:
            write_model_card(run_dir, tmp / MODEL_CARD, fs=dataset, export=manifest)


def export_run(run_dir: str | os.PathLike, out: str | os.PathLike, *, stage: int | None = None,
               formats: tuple[str, ...] = ("savedmodel",), overwrite: bool = False, with_encoders: bool = False) -> Path:
    """Export a run directory's model (last or 1-based ``stage``); see :func:`export_model`.

    ``with_encoders``: also the raw-input SavedModels of the feature set's encoders (:mod:`cvs_tf.serving.raw_export`)."""
    from cvs_tf.training.run_dir import load_run

    formats = _check_formats(formats)  # before the (slow) model load
    with OutputDir(out, EXPORT_KIND, overwrite=overwrite, error=ExportError) as dest:  # checked and locked first
        model, fs, config = load_run(run_dir, stage=stage)
        _write_export(dest, model, formats, dataset=fs, run_config=config, run_name=Path(run_dir).resolve().name,
                      check_rows=CHECK_ROWS, with_encoders=with_encoders, run_dir=run_dir)
    return Path(out)


# --------------------------------------------------------------------------- loading


def export_sha256(path: str | os.PathLike) -> str:
    """The identity of an export: sha256 of its ``export.json`` bytes."""
    return hashlib.sha256((Path(path) / EXPORT_MANIFEST).read_bytes()).hexdigest()


class Export:
    """A loaded export directory: its manifest, identity, and ``embed(modality, features)``.

    Artifacts are loaded with plain ``tf.saved_model.load`` on first use of a modality.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        recover_previous(self.path, EXPORT_KIND)  # an old export a killed --overwrite left aside
        manifest, blob = read_manifest(self.path, EXPORT_MANIFEST, fmt=EXPORT_FORMAT, version=EXPORT_FORMAT_VERSION,
                                       required=("dim", "modalities", "stage"), noun="export", error=ExportError,
                                       hint="make one with python -m cvs_tf.export RUN_DIR --out DIR")
        check_export_manifest(self.path / EXPORT_MANIFEST, manifest)
        self.manifest = manifest
        self.sha256 = hashlib.sha256(blob).hexdigest()
        self._loaded: dict = {}

    def __repr__(self) -> str:
        return f"Export({str(self.path)!r}, modalities={self.modalities}, dim={self.dim}, sha256={self.sha256[:12]})"

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def modalities(self) -> list[str]:
        """Exported modalities in the model's order."""
        return list(self.manifest.get("modality_order") or self.manifest["modalities"])

    @property
    def stage(self) -> int:
        return int(self.manifest["stage"])

    @property
    def classes(self) -> list[str] | None:
        ds = self.manifest.get("dataset") or {}
        return ds.get("classes")

    @property
    def identity(self) -> dict:
        """What an index records about the export it was built with."""
        return {"sha256": self.sha256, "dim": self.dim, "space": self.manifest.get("space"),
                "stage": self.stage, "run": (self.manifest.get("run") or {}).get("name")}

    def input_dim(self, modality: str) -> int:
        self._check_modality(modality)
        return int(self.manifest["modalities"][modality]["input_dim"])

    def _check_modality(self, modality: str) -> None:
        if modality not in self.manifest["modalities"]:
            raise ExportError(f"{self.path}: export has no modality {modality!r} "
                              f"(has {', '.join(self.modalities)})")

    def artifact(self, modality: str):
        """The loaded SavedModel of one modality (``.serve(x)``)."""
        self._check_modality(modality)
        if modality not in self._loaded:
            import tensorflow as tf

            entry = self.manifest["modalities"][modality]
            sub = inside(self.path, entry["savedmodel"], error=ExportError,
                         where=f"{self.path / EXPORT_MANIFEST}: modalities.{modality}.savedmodel")
            if not (sub / "saved_model.pb").is_file():
                raise ExportError(f"{sub}: missing SavedModel (saved_model.pb) for modality {modality!r}")
            try:
                loaded = tf.saved_model.load(str(sub))
                sha = loaded_weights_sha256(loaded)
            except Exception as exc:  # TF raises several types for a damaged SavedModel
                raise ExportError(f"{sub}: cannot be loaded ({' '.join(str(exc).split())[:200]})") from None
            if sha != entry["weights_sha256"]:
                raise ExportError(f"{sub}: its weights are not the ones {EXPORT_MANIFEST} records for {modality!r} "
                                  f"(weights_sha256 {sha[:12]}, recorded {entry['weights_sha256'][:12]}): the "
                                  "SavedModel was replaced or changed; export the run again")
            self._loaded[modality] = loaded
        return self._loaded[modality]

    def raw_artifact(self, modality: str):
        """The loaded raw-input SavedModel of one modality (``export --with-encoders``)."""
        self._check_modality(modality)
        key = f"{modality}.raw"
        if key not in self._loaded:
            import tensorflow as tf

            record = self.manifest["modalities"][modality].get("encoder") or {}
            if not record.get("savedmodel"):
                raise ExportError(f"{self.path}: no raw-input SavedModel for {modality!r} (export --with-encoders)")
            sub = inside(self.path, record["savedmodel"], error=ExportError,
                         where=f"{self.path / EXPORT_MANIFEST}: modalities.{modality}.encoder.savedmodel")
            try:
                loaded = tf.saved_model.load(str(sub))
            except Exception as exc:  # TF raises several types for a damaged SavedModel
                raise ExportError(f"{sub}: cannot be loaded ({' '.join(str(exc).split())[:200]})") from None
            if loaded_weights_sha256(loaded) != record.get("savedmodel_weights_sha256"):
                raise ExportError(f"{sub}: its weights are not the ones {EXPORT_MANIFEST} records; export the run again")
            self._loaded[key] = loaded
        return self._loaded[key]

    def check_features(self, modality: str, features) -> np.ndarray:
        """Features as a float32 (N, d_m) array (a 1-D vector is one row); raises ExportError otherwise."""
        d = self.input_dim(modality)
        x = np.asarray(features)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2:
            raise ExportError(f"{modality} features must be (N, {d}) or ({d},), got shape {x.shape}")
        if x.shape[1] != d:
            raise ExportError(f"{modality} features have dimension {x.shape[1]}; the export expects {d}")
        if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
            raise ExportError(f"{modality} features must be real numbers, got dtype {x.dtype}")
        return x

    def embed(self, modality: str, features, batch_size: int = 8192) -> np.ndarray:
        """L2-normalised embeddings (N, D) float32 of raw ``modality`` features (N, d_m)."""
        x = self.check_features(modality, features)
        serve = self.artifact(modality).serve
        out = np.empty((x.shape[0], self.dim), dtype=np.float32)
        for a in range(0, x.shape[0], batch_size):
            rows = np.asarray(x[a:a + batch_size], dtype=np.float32)
            if not np.isfinite(rows).all():
                raise ExportError(f"{modality} features contain NaN or Inf")
            out[a:a + len(rows)] = serve(rows).numpy()
        return out
