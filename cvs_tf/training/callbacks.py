"""The Trainer's epoch end: divergence checks, validation mAP, early stopping, checkpoint, TensorBoard scalars, progress line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from cvs_tf.config import EARLY_STOPPING, TrainConfig
from cvs_tf.data.store import FeatureSet
from cvs_tf.training.checkpoint import Checkpoint

VALIDATION_TERMS = ("val_loss", "val_map")  # the validation values of the progress line


class TrainingDivergedError(ValueError):
    """A loss term, a trainable weight or an embedding became NaN or Inf; the run stopped before checkpointing that epoch."""


class NonFiniteEmbeddingsError(ValueError):
    """A model's embeddings of ``modality`` (``split`` items) hold NaN or Inf."""

    def __init__(self, modality: str, split: str):
        super().__init__(f"the {split} embeddings of {modality} hold NaN or Inf")
        self.modality, self.split = modality, split


def diverged(stage: int, epoch: int, what: str, kept: str) -> TrainingDivergedError:
    """The one-line divergence error of (0-based) ``stage`` and (1-based) ``epoch``; ``kept`` says what survives."""
    return TrainingDivergedError(
        f"stage {stage + 1} epoch {epoch}: {what} (diverged); training stopped "
        f"and this epoch was not checkpointed; {kept}; try a smaller --lr in a new run"
    )


def monitor(mode: str) -> tuple[str, float]:
    """``(logged value, sign)`` an early-stopping mode of :data:`cvs_tf.config.EARLY_STOPPING` selects the
    best epoch by (sign +1: higher is better); ``none`` never stops but still keeps the best val mAP epoch."""
    if mode not in EARLY_STOPPING:
        raise ValueError(f"early stopping must be {', '.join(EARLY_STOPPING)}, got {mode!r}")
    return {"val_loss": ("val_loss", -1.0), "val_recall": ("val_recall", 1.0)}.get(mode, ("val_map", 1.0))


def diverged_at_evaluation(model, run_dir: Path, split: str, exc: Exception) -> TrainingDivergedError:
    """Non-finite embeddings of the final model, whose every epoch passed its checks: what diverged and what was kept."""
    k = model.num_stages - 1
    stage = model.stage_name(k)
    return TrainingDivergedError(
        f"the run diverged: the final model (stage {k + 1} [{stage}]) gives NaN or Inf on the {split} split "
        f"({exc}) although every epoch's loss, weights and validation embeddings were finite; no metrics.json "
        f"was written; {Path(run_dir) / 'stages' / stage / 'model.keras'} and the checkpoint keep that model; "
        "try a smaller --lr in a new run")


def _directions(model, fs: FeatureSet, split: str):
    """``(query, retrieval, query embeddings, retrieval embeddings)`` of both directions of the current
    stage's trained pairs, each modality embedded once; :class:`NonFiniteEmbeddingsError` on NaN or Inf."""
    emb = {}
    for a, b in model.active_pairs():
        for m in (a, b):
            if m not in emb:
                emb[m] = model.embed(m, fs.x(m, split)).numpy()
                if not np.isfinite(emb[m]).all():
                    raise NonFiniteEmbeddingsError(m, split)
        for q, r in ((a, b), (b, a)):
            if len(emb[q]) and len(emb[r]):
                yield q, r, emb[q], emb[r]


def validation_map(model, fs: FeatureSet, split: str = "val", k: int = 50) -> float:
    """Mean mAP@k (independent protocol) over both directions of the current stage's trained pairs;
    :class:`NonFiniteEmbeddingsError` when an embedding holds NaN or Inf."""
    from cvs_tf.evaluation.metrics import map_at_k

    scores = [map_at_k(eq, er, fs.y(q, split), fs.y(r, split), k=k) for q, r, eq, er in _directions(model, fs, split)]
    return float(np.mean(scores)) if scores else float("nan")


def validation_recall(model, fs: FeatureSet, split: str = "val") -> float:
    """Mean over both directions of the current stage's trained pairs of (R@1 + R@5 + R@10) / 3 of each
    item's own partner (instance-paired ``fs``); :class:`NonFiniteEmbeddingsError` on NaN or Inf."""
    from cvs_tf.evaluation.metrics import recall_at_k

    recs = [recall_at_k(eq, er, (1, 5, 10)) for _, _, eq, er in _directions(model, fs, split)]
    scores = [(rec["1"] + rec["5"] + rec["10"]) / 3 for rec in recs]
    return float(np.mean(scores)) if scores else float("nan")


def progress_terms(logs: dict) -> list[str]:
    """The logged names the progress line shows: ``loss``, every top-level term (no "."), ``val_loss``, ``val_map``."""
    train = [k for k in logs if not k.startswith("val_") and "." not in k and k != "lr"]
    train.sort(key=lambda k: k != "loss")  # stable: loss first, the terms in tracker order
    return train + [k for k in VALIDATION_TERMS if k in logs]


def progress_line(stage: int, epoch: int, epochs: int, logs: dict, note: str = "") -> str:
    """``  stage S epoch E/N: loss=... <term>=... val_loss=... val_map=...`` (1-based stage and epoch)."""
    values = " ".join(f"{k}={logs[k]:.4f}" for k in progress_terms(logs))
    return f"  stage {stage + 1} epoch {epoch}/{epochs}: {values}" + (f"  ({note})" if note else "")


class TensorBoardScalars:
    """Per-epoch scalars under ``ROOT/stage<name>/{train,validation}``: ``loss/<term>``, ``metric/map``, ``optim/lr``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._writers = {}

    def _writer(self, stage_name: str, split: str):
        key = (stage_name, split)
        if key not in self._writers:
            self._writers[key] = tf.summary.create_file_writer(str(self.root / f"stage{stage_name}" / split))
        return self._writers[key]

    def write(self, stage_name: str, step: int, logs: dict) -> None:
        for split in ("train", "validation"):
            writer = self._writer(stage_name, split)
            with writer.as_default(step=step):
                for k, v in logs.items():
                    is_val = k.startswith("val_")
                    if (split == "validation") != is_val:
                        continue
                    tag = k[4:] if is_val else k
                    group = "loss" if tag not in ("lr", "map") else "optim" if tag == "lr" else "metric"
                    tf.summary.scalar(f"{group}/{tag}", v)
            writer.flush()

    def close(self) -> None:
        for w in self._writers.values():
            w.close()
        self._writers = {}


def check_finite(logs: dict, *, stage: int, epoch: int, kept: str) -> None:
    """A NaN/Inf training loss term (or no loss logged) raises :class:`TrainingDivergedError`; ``kept`` says what survives."""
    bad = {k: v for k, v in logs.items() if not k.startswith("val_") and k != "lr" and not np.isfinite(v)}
    if not bad and "loss" in logs:
        return
    if "loss" not in logs:
        bad = {"loss": float("nan")}
    key = "loss" if "loss" in bad else sorted(bad)[0]
    raise diverged(stage, epoch, f"training {key} is {bad[key]}", kept)


def non_finite_weights(model) -> list[str]:
    """Paths of the trainable weights holding NaN or Inf (each tested where it lives, device or host)."""
    return [v.path for v in model.trainable_weights
            if not bool(keras.ops.convert_to_numpy(keras.ops.all(keras.ops.isfinite(v))))]


def check_weights(model, *, stage: int, epoch: int, kept: str) -> None:
    """A trainable weight holding NaN or Inf raises :class:`TrainingDivergedError`, whatever the loss said."""
    bad = non_finite_weights(model)
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise diverged(stage, epoch, f"trainable weight {bad[0]}{more} holds NaN or Inf", kept)


class EpochEnd(keras.callbacks.Callback):
    """In this order at each epoch end: divergence checks (loss terms, trainable weights, validation
    embeddings), val mAP, early stopping, checkpoint, TensorBoard, progress line.

    ``state`` (the stage's early-stopping state and history, as checkpointed) is updated in place;
    ``best_weights`` holds the selected epoch's weights. ``val_set`` is None without a validation
    split (then the last epoch is kept), ``checkpoint`` None when the run keeps none.
    """

    def __init__(self, stage: int, state: dict, *, train: TrainConfig, scalars: TensorBoardScalars,
                 log: Callable[[str], None], val_set: FeatureSet | None = None, checkpoint: Checkpoint | None = None,
                 on_epoch: Callable[[], None] | None = None):
        super().__init__()
        self.stage, self.state, self.train = stage, state, train
        self.scalars, self.log, self.val_set, self.checkpoint = scalars, log, val_set, checkpoint
        self.on_epoch = on_epoch
        resumed = checkpoint is not None and state.get("epoch", 0) > 0
        self.best_weights = checkpoint.best_weights() if resumed else None

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        kept = self._kept()
        check_finite(logs, stage=self.stage, epoch=epoch + 1, kept=kept)
        check_weights(self.model, stage=self.stage, epoch=epoch + 1, kept=kept)
        if self.val_set is not None:
            try:
                logs["val_map"] = validation_map(self.model, self.val_set, "val", self.train.eval_k)
                if self.train.early_stopping == "val_recall":
                    logs["val_recall"] = validation_recall(self.model, self.val_set, "val")
            except NonFiniteEmbeddingsError as exc:
                raise diverged(self.stage, epoch + 1, str(exc), kept) from None
        logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        st = self.state
        st["history"].append({"epoch": epoch + 1, **logs})
        stop = self._select(epoch + 1, logs)
        st["epoch"] = epoch + 1
        st["stage_done"] = stop or epoch + 1 >= self.train.epochs
        if self.checkpoint is not None:
            self.checkpoint.save(self.model, {"stage": self.stage, **st}, self.best_weights)
        if self.on_epoch is not None:
            self.on_epoch()
        self.scalars.write(self.model.stage_name(self.stage), epoch + 1, logs)
        if stop:
            self.model.stop_training = True
        key = monitor(self.train.early_stopping)[0]
        note = f"early stop: best {key} {st['best']:.4f} at epoch {st['best_epoch']}" if stop else ""
        self.log(progress_line(self.stage, epoch + 1, self.train.epochs, logs, note))

    def _select(self, epoch: int, logs: dict) -> bool:
        """Early-stopping bookkeeping for this (1-based) epoch; True when the stage should stop."""
        st = self.state
        key, sign = monitor(self.train.early_stopping)
        value = logs.get(key)
        if self.val_set is None:  # no validation split: no selection, the last epoch is kept
            st["best_epoch"], st["wait"] = epoch, 0
        elif value is not None and np.isfinite(value) and (st["best"] is None or sign * value > sign * st["best"]):
            st["best"], st["best_epoch"], st["wait"] = value, epoch, 0
            self.best_weights = [np.asarray(w) for w in self.model.get_weights()]
        else:
            st["wait"] += 1
        return self.train.early_stopping != "none" and st["wait"] >= self.train.patience

    def _kept(self) -> str:
        if self.checkpoint is None:
            return "the run keeps no checkpoint"
        if self.state["epoch"]:
            return f"{self.checkpoint.dir} keeps the last good epoch ({self.state['epoch']})"
        return "the checkpoint keeps the previous stage" if self.stage else "no epoch completed, nothing kept"
