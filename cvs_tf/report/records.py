"""A finished run's own records for the report and the model card: config, metrics, history, TensorBoard scalars."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


class ReportError(ValueError):
    """A run that cannot be reported on (missing, unfinished, damaged): one line."""


@dataclass
class RunRecords:
    """What a run directory holds about itself (``metrics`` is required; the rest may be None)."""

    run_dir: Path
    config: dict
    resolved: dict
    metrics: dict
    history: dict | None = None
    calibration: dict | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def space(self) -> str:
        return str(self.config.get("model", {}).get("space"))

    @property
    def data_label(self) -> str:
        return str(self.metrics.get("data_label") or self.resolved.get("data_label") or "")

    @property
    def synthetic(self) -> bool:
        return "synthetic" in self.data_label


def _json(path: Path, what: str, *, required: bool, notes: list[str]):
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        if required:
            raise ReportError(f"{path}: missing ({what}); the run is unfinished or half-written: finish it with "
                              f"python -m cvs_tf.train --resume --out {path.parent}") from None
        notes.append(f"{path.name}: missing")
        return None
    except (OSError, ValueError) as exc:
        if required:
            raise ReportError(f"{path}: corrupt ({what}: {' '.join(str(exc).split())[:120]})") from None
        notes.append(f"{path.name}: unreadable")
        return None
    if not isinstance(data, dict):
        if required:
            raise ReportError(f"{path}: corrupt ({what}: expected an object)")
        notes.append(f"{path.name}: not an object")
        return None
    return data


def read_records(run_dir: str | Path) -> RunRecords:
    """The records of a finished run; :class:`ReportError` in one line for a missing, unfinished or damaged one."""
    from cvs_tf.evaluation.calibration import CALIBRATION_FILE, read_calibration
    from cvs_tf.training.run_dir import RunDirError, read_run_config

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: no such run directory")
    try:
        read_run_config(run_dir)
    except RunDirError as exc:
        raise ReportError(str(exc)) from None
    notes: list[str] = []
    config = json.loads((run_dir / "config.json").read_text())
    metrics = _json(run_dir / "metrics.json", "the run's final metrics", required=True, notes=notes)
    if not isinstance(metrics.get("test"), dict) and not isinstance(metrics.get("val"), dict):
        raise ReportError(f"{run_dir / 'metrics.json'}: corrupt (no val or test table)")
    history = _json(run_dir / "history.json", "training history", required=False, notes=notes)
    return RunRecords(run_dir, config, config.get("resolved") or {}, metrics, history,
                      read_calibration(run_dir / CALIBRATION_FILE), notes)


def _event_files(tb_dir: Path) -> list[Path]:
    return sorted(p for p in tb_dir.rglob("events.out.tfevents.*") if p.is_file()) if tb_dir.is_dir() else []


def _scalar(value) -> float | None:
    import numpy as np
    import tensorflow as tf

    if value.HasField("tensor"):
        arr = tf.make_ndarray(value.tensor)
        return float(np.asarray(arr).reshape(-1)[0]) if np.asarray(arr).size == 1 else None
    return float(value.simple_value) if value.HasField("simple_value") else None


def _read_events(path: Path) -> tuple[list[tuple[str, int, float]], list[float]]:
    """``(scalars [(tag, step, value)], wall times)`` of one event file; a damaged tail ends the reading."""
    import tensorflow as tf

    scalars, times = [], []
    try:
        for raw in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(raw.numpy())
            times.append(event.wall_time)
            for v in event.summary.value:
                x = _scalar(v)
                if x is not None:
                    scalars.append((v.tag, int(event.step), x))
    except (tf.errors.OpError, ValueError):  # a truncated or corrupt record: keep what was read
        pass
    return scalars, times


def tensorboard_scalars(run_dir: str | Path) -> tuple[dict, float | None]:
    """``({stage: {"train"|"validation": {tag: [(step, value)]}}}, wall seconds first→last event)``; ``({}, None)``
    when the run has no readable TensorBoard events."""
    tb = Path(run_dir) / "tensorboard"
    curves: dict = {}
    times: list[float] = []
    for path in _event_files(tb):
        rel = path.relative_to(tb).parts
        stage, part = (rel[0], rel[1]) if len(rel) >= 3 else ("run", rel[0] if len(rel) > 1 else "train")
        scalars, t = _read_events(path)
        times += t
        for tag, step, x in scalars:
            curves.setdefault(stage, {}).setdefault(part, {}).setdefault(tag, []).append((step, x))
    for parts in curves.values():
        for tags in parts.values():
            for tag in tags:
                tags[tag] = sorted(dict(tags[tag]).items())
    wall = (max(times) - min(times)) if len(times) > 1 else None
    return curves, wall


def summary_rows(rec: RunRecords, fs=None) -> list[tuple[str, str]]:
    """``(field, value)`` rows of the run summary: space, recipe, data with sha256, code version, seed, wall time."""
    cfg, res = rec.config, rec.resolved
    model, loss, train = cfg.get("model", {}), cfg.get("loss", {}), cfg.get("train", {})
    stages = res.get("stages") or []
    rows = [("run", str(rec.run_dir.resolve().name)), ("space", rec.space),
            ("stages", " → ".join("+".join(s) for s in stages) or "-"),
            ("recipe", f"loss {loss.get('kind')}, D {model.get('dim')}, attention {model.get('attention')}, "
                       f"lr {train.get('lr')}, batch {train.get('batch_size')}, epochs ≤ {train.get('epochs')}, "
                       f"selection on {train.get('select', 'val')} by {train.get('early_stopping')}"),
            ("preset", str(res.get("preset") or cfg.get("preset") or "none recorded (options as above)")),
            ("data", f"{res.get('dataset_name')} ({rec.data_label})"),
            ("data manifest sha256", str(res.get("dataset_manifest_sha256"))),
            ("code version", f"cvs_tf {res.get('package_version')}, TensorFlow {res.get('tensorflow_version')}, "
                             f"Keras {res.get('keras_version')}"),
            ("seed", str(res.get("seed", train.get("seed"))))]
    if fs is not None:
        rows.insert(6, ("items (train/val/test)", "; ".join(
            f"{m} {fs.count(m, 'train')}/{fs.count(m, 'val')}/{fs.count(m, 'test')}" for m in fs.modalities)))
    if res.get("extended_from"):
        rows.append(("extended from", str(res.get("extended_from"))))
    return rows
