"""Read a finished run directory back: its resolved config, dataset and per-stage models."""

from __future__ import annotations

import json
from pathlib import Path

from cvs_tf.data.registry import dataset_path
from cvs_tf.data.store import FeatureSetError, load_feature_set


class RunDirError(ValueError):
    """A run directory is missing, incomplete or corrupt."""


def stage_dirs(run_dir: str | Path) -> list[Path]:
    """Stage folders ``stages/<k>-<name>`` in stage order."""
    root = Path(run_dir) / "stages"
    dirs = [p for p in root.iterdir() if p.is_dir() and (p / "model.keras").is_file()] if root.is_dir() else []
    return sorted(dirs, key=lambda p: int(p.name.split("-", 1)[0]))


def load_run(run_dir: str | Path, stage: int | None = None):
    """``(model, featureset, config_dict)`` for the last (or a given 1-based) stage of a run."""
    import keras

    import cvs_tf.models  # noqa: F401  (registers the serialisable classes)

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: no such run directory")
    cfg_path = run_dir / "config.json"
    try:
        config = json.loads(cfg_path.read_text())
        resolved = config["resolved"]
    except FileNotFoundError:
        raise RunDirError(f"{cfg_path}: missing (not a cvs_tf run directory)") from None
    except (json.JSONDecodeError, KeyError) as exc:
        raise RunDirError(f"{cfg_path}: corrupt ({exc})") from None
    stages = stage_dirs(run_dir)
    if not stages:
        raise RunDirError(f"{run_dir}/stages: no finished stage with a model.keras (run incomplete?)")
    if stage is not None:
        match = [p for p in stages if int(p.name.split("-", 1)[0]) == stage]
        if not match:
            raise RunDirError(f"{run_dir}: no finished stage {stage} (have {', '.join(p.name for p in stages)})")
        chosen = match[0]
    else:
        chosen = stages[-1]
    try:
        model = keras.models.load_model(chosen / "model.keras", compile=False)
    except Exception as exc:  # keras raises many types for a damaged archive
        raise RunDirError(f"{chosen / 'model.keras'}: cannot be loaded ({' '.join(str(exc).split())[:200]})") from None
    try:  # the dataset as it was named (portable across clones), else where it was found
        fs = load_feature_set(dataset_path(config["train"].get("dataset")))
    except FeatureSetError:
        try:
            fs = load_feature_set(dataset_path(resolved.get("dataset_dir")))
        except FeatureSetError as exc:
            raise RunDirError(f"dataset of run {run_dir} unavailable: {exc}") from None
    if fs.manifest_sha256 != resolved.get("dataset_manifest_sha256"):
        raise RunDirError(f"{fs.path}: dataset manifest differs from the one the run {run_dir} was trained on")
    return model, fs, config
