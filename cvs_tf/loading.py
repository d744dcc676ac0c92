"""``cvs_tf.load_model``: a trained space from a ``.keras`` file, a stage folder or a run directory, with one-line errors."""

from __future__ import annotations

import os
from pathlib import Path


class ModelFileError(ValueError):
    """A model file or run directory that is missing, incomplete or cannot be loaded (one-line message)."""


def model_file(path: str | os.PathLike) -> Path:
    """The ``.keras`` file meant by ``path``: the file itself, a stage folder's ``model.keras``, or a
    run directory's last finished stage."""
    path = Path(path)
    if path.is_dir():
        if (path / "model.keras").is_file():
            return path / "model.keras"
        if (path / "stages").is_dir() or (path / "config.json").is_file():
            from cvs_tf.training.run_dir import stage_dirs

            stages = stage_dirs(path)
            if not stages:
                raise ModelFileError(f"{path}/stages: no finished stage with a model.keras (run incomplete?)")
            return stages[-1] / "model.keras"
        raise ModelFileError(f"{path}: neither a .keras file, a stage folder nor a run directory")
    if not path.exists():
        raise ModelFileError(f"{path}: no such file or directory")
    return path


def load_model(path: str | os.PathLike, *, compile: bool = False, safe_mode: bool = True):
    """Load a CVS / M-CVS / RVS model saved by cvs_tf.

    Args:
      path: a ``.keras`` file, a stage folder (``RUN/stages/2-audio``) or a run directory (its
        last finished stage).
      compile: restore the training configuration too (not needed to embed or evaluate).
      safe_mode: Keras's guard against arbitrary code in the archive (keep it on).

    Raises:
      ModelFileError: the file is missing, the run has no finished stage, or the archive is
        damaged or not a Keras model (one line, naming the file).
    """
    file = model_file(path)
    import keras

    import cvs_tf.layers  # noqa: F401  (registers the serialisable classes)
    import cvs_tf.losses  # noqa: F401
    import cvs_tf.models  # noqa: F401

    try:
        return keras.saving.load_model(file, compile=compile, safe_mode=safe_mode)
    except Exception as exc:  # keras raises many types for a damaged archive
        detail = " ".join(str(exc).split())
        raise ModelFileError(f"{file}: cannot be loaded as a Keras model "
                             f"({type(exc).__name__}: {detail[:200]})") from None
