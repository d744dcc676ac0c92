"""What a run persists, atomically: the resumable end-of-epoch checkpoint, the JSON records and the stage models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cvs_tf.training.run_dir import RunDirError
from cvs_tf.utils.atomic import atomic_dir, atomic_path, write_json_atomic

CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_BACKUP = f".{CHECKPOINT_DIR}.old"  # the previous checkpoint while the new one is renamed in
STATE_FIELDS = {"stage": int, "epoch": int, "wait": int, "best_epoch": int, "history": list}


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json(path: Path, obj) -> None:
    """Write JSON atomically (numpy scalars and arrays as plain numbers and lists)."""
    write_json_atomic(path, obj, default=_json_default)


def read_json(path: Path, default):
    """A run record written by :func:`write_json`, or ``default`` when missing; RunDirError when corrupt."""
    if not path.is_file():
        return default
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{path}: corrupt ({' '.join(str(exc).split())[:160]})") from None
    if type(value) is not type(default):
        raise RunDirError(f"{path}: corrupt (expected a JSON {type(default).__name__})")
    return value


def save_model_atomic(model, path: Path) -> None:
    """``model.save`` into ``path`` (a ``.keras`` file) atomically."""
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)


def _savez(path: Path, arrays) -> None:
    np.savez(path, *[np.asarray(a) for a in arrays])


class Checkpoint:
    """End-of-epoch state (weights, optimizer slots, best weights, early-stopping and history) for --resume."""

    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir) / CHECKPOINT_DIR
        self.backup = self.dir.with_name(CHECKPOINT_BACKUP)

    def exists(self) -> bool:
        return (self.dir / "state.json").is_file()

    def recover(self) -> None:
        """A kill between the two renames of :meth:`save` leaves only ``.checkpoint.old``: put it back."""
        if not self.dir.exists() and (self.backup / "state.json").is_file():
            self.backup.replace(self.dir)

    def validate(self) -> dict:
        """Read ``state.json`` and every array file once, so a corrupt checkpoint is refused before anything runs."""
        state = self.state()
        for name in ("weights.npz", "optimizer.npz"):
            self._arrays(self.dir / name)
        if (self.dir / "best.npz").is_file():
            self._arrays(self.dir / "best.npz")
        return state

    def save(self, model, state: dict, best_weights) -> None:
        """Write a new checkpoint beside the current one, then swap it in (the current one kept as the backup)."""
        with atomic_dir(self.dir, overwrite=True, backup=self.backup) as tmp:
            _savez(tmp / "weights.npz", model.get_weights())
            _savez(tmp / "optimizer.npz", model.optimizer.variables)
            if best_weights is not None:
                _savez(tmp / "best.npz", best_weights)
            write_json(tmp / "state.json", state)

    def state(self) -> dict:
        path = self.dir / "state.json"
        try:
            state = json.loads(path.read_text())
        except FileNotFoundError:
            raise RunDirError(f"{path}: missing (corrupt checkpoint)") from None
        except (OSError, ValueError) as exc:
            raise RunDirError(f"{path}: corrupt checkpoint state ({' '.join(str(exc).split())})") from None
        if not isinstance(state, dict):
            raise RunDirError(f"{path}: corrupt checkpoint state (expected an object, got {type(state).__name__})")
        for key, typ in STATE_FIELDS.items():
            if key not in state:
                raise RunDirError(f"{path}: {key}: missing (corrupt checkpoint state)")
            if not isinstance(state[key], typ) or isinstance(state[key], bool):
                raise RunDirError(f"{path}: {key}: expected {typ.__name__}, got {type(state[key]).__name__} "
                                  "(corrupt checkpoint state)")
        if state["stage"] < 0 or state["epoch"] < 0:
            raise RunDirError(f"{path}: stage/epoch: negative (corrupt checkpoint state)")
        return state

    @staticmethod
    def _arrays(path: Path):
        try:
            with np.load(path, allow_pickle=False) as z:
                return [z[f"arr_{i}"] for i in range(len(z.files))]
        except FileNotFoundError:
            raise RunDirError(f"{path}: missing (corrupt checkpoint)") from None
        except Exception as exc:  # BadZipFile, EOFError, ValueError, zlib.error, KeyError ...
            msg = " ".join(str(exc).split())[:160]
            raise RunDirError(f"{path}: corrupt or truncated checkpoint file ({type(exc).__name__}: {msg})") from None

    def restore_weights(self, model) -> None:
        path = self.dir / "weights.npz"
        values = self._arrays(path)
        try:
            model.set_weights(values)
        except ValueError as exc:
            raise RunDirError(f"{path}: does not match the model ({' '.join(str(exc).split())[:160]})") from None

    def restore_optimizer(self, model) -> None:
        opt = model.optimizer
        if not opt.built:
            opt.build(model.trainable_variables)
        path = self.dir / "optimizer.npz"
        values = self._arrays(path)
        if len(values) != len(opt.variables) or any(tuple(v.shape) != a.shape for v, a in zip(opt.variables, values)):
            raise RunDirError(f"{path}: optimizer state does not match the model (corrupt checkpoint)")
        for v, val in zip(opt.variables, values):
            v.assign(val)

    def best_weights(self):
        p = self.dir / "best.npz"
        return self._arrays(p) if p.is_file() else None
