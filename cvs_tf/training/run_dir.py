"""Read a run directory back (its config, dataset and per-stage models) and tell a fresh, restartable or used one apart."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from cvs_tf.config import ConfigError, RunConfig
from cvs_tf.data.registry import DEFAULT_DATASET, find_dataset
from cvs_tf.data.store import FeatureSetError
from cvs_tf.training.lock import LOCK_FILE
from cvs_tf.utils.atomic import temporary_of

# what a failed start can leave (no epoch completed): a restart may remove these (and the temporaries
# of TEMPORARY_TARGETS, see cvs_tf.utils.atomic), nothing else
RESTARTABLE_ENTRIES = {"config.json", ".config.json.tmp", "tensorboard", ".checkpoint.tmp", LOCK_FILE}
TEMPORARY_TARGETS = {"config.json", "checkpoint"}


class RunDirError(ValueError):
    """A run directory is missing, incomplete or corrupt."""


def read_run_config(run_dir: str | Path) -> tuple[RunConfig, dict]:
    """``(RunConfig, resolved)`` of a run's ``config.json``; a one-line :class:`RunDirError` names the file and field."""
    cfg_path = Path(run_dir) / "config.json"
    try:
        data = json.loads(cfg_path.read_text())
    except FileNotFoundError:
        raise RunDirError(f"{cfg_path}: missing (not a cvs_tf run directory)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{cfg_path}: corrupt (not valid JSON: {exc})") from None
    except OSError as exc:
        raise RunDirError(f"{cfg_path}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise RunDirError(f"{cfg_path}: corrupt (expected an object, got {type(data).__name__})")
    data = dict(data)
    resolved = data.pop("resolved", None)
    if not isinstance(resolved, dict):
        raise RunDirError(f"{cfg_path}: resolved: missing or not an object (not a cvs_tf run directory)")
    for key, types in (("dataset_manifest_sha256", (str,)), ("dataset_dir", (str, type(None))),
                       ("dataset_name", (str, type(None))), ("stages", (list,))):
        if key in resolved and not isinstance(resolved[key], types):
            raise RunDirError(f"{cfg_path}: resolved.{key}: wrong type {type(resolved[key]).__name__}")
    if not isinstance(resolved.get("dataset_manifest_sha256"), str):
        raise RunDirError(f"{cfg_path}: resolved.dataset_manifest_sha256: missing")
    try:
        cfg = RunConfig.from_dict(data).validate()
    except ConfigError as exc:
        raise RunDirError(f"{cfg_path}: {exc}") from None
    except (TypeError, ValueError, AttributeError) as exc:  # a type from_dict let through
        raise RunDirError(f"{cfg_path}: field of the wrong type ({' '.join(str(exc).split())})") from None
    return cfg, resolved


def locate_dataset(config: RunConfig, resolved: dict):
    """``(featureset, directory)`` a run was trained on: by its recorded absolute path, then as
    typed, then by name under ``$CVS_TF_DATA`` / embedded; its manifest sha256 must match."""
    typed = config.train.dataset or DEFAULT_DATASET
    dirname = Path(resolved["dataset_dir"]).name if resolved.get("dataset_dir") else None
    names = [typed, Path(typed).name, dirname, resolved.get("dataset_name")]
    return find_dataset(resolved["dataset_manifest_sha256"], path=resolved.get("dataset_dir"),
                        names=list(dict.fromkeys(n for n in names if n)))


def has_completed_work(run_dir: str | Path) -> bool:
    """Whether a run directory holds a completed epoch, a finished stage or final results."""
    root = Path(run_dir)
    return ((root / "checkpoint").exists() or (root / ".checkpoint.old").exists() or (root / "stages").exists()
            or (root / "history.json").exists() or (root / "metrics.json").exists())


def is_restartable(run_dir: str | Path) -> bool:
    """A cvs_tf run directory left by a failed start: its config.json and nothing of a completed epoch."""
    root = Path(run_dir)
    names = {p.name for p in root.iterdir() if not _is_start_temporary(p.name)}
    if "config.json" not in names or not names <= RESTARTABLE_ENTRIES or has_completed_work(root):
        return False
    try:
        data = json.loads((root / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and isinstance(data.get("resolved"), dict) and "package_version" in data["resolved"]


def _is_start_temporary(name: str) -> bool:
    return temporary_of(name) in TEMPORARY_TARGETS


def clear_failed_start(run_dir: str | Path) -> None:
    """Remove what a failed start left (only :data:`RESTARTABLE_ENTRIES` and temporaries, never the lock file)."""
    root = Path(run_dir)
    temporaries = [p.name for p in root.iterdir() if _is_start_temporary(p.name)]
    for name in sorted(RESTARTABLE_ENTRIES - {LOCK_FILE}) + temporaries:
        p = root / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


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
    cfg, resolved = read_run_config(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
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
    try:
        fs, _ = locate_dataset(cfg, resolved)
    except FeatureSetError as exc:
        raise RunDirError(f"dataset of run {run_dir}: {exc}") from None
    return model, fs, config
