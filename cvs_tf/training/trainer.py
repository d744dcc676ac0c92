"""Stage-wise training of a space: seeded batches, early stopping on validation, atomic checkpoints, TensorBoard, run records."""

from __future__ import annotations

import gc
import json
import os
import shutil
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import cvs_tf
from cvs_tf.config import RunConfig
from cvs_tf.data.pipeline import FeatureBank, index_dataset, release_feature_set, steps_per_epoch
from cvs_tf.data.registry import dataset_path
from cvs_tf.data.store import FeatureSet, load_feature_set
from cvs_tf.models.factory import build_model, resolve_stages

CHECKPOINT_DIR = "checkpoint"


# ---------------------------------------------------------------------------- atomic files


def write_json(path: Path, obj) -> None:
    """Write JSON atomically (temporary file in the same directory, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, default=_json_default)
        f.write("\n")
    os.replace(tmp, path)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_model_atomic(model, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------- checkpoint


class Checkpoint:
    """End-of-epoch state (weights, optimizer slots, best weights, early-stopping and history) for --resume."""

    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir) / CHECKPOINT_DIR

    def exists(self) -> bool:
        return (self.dir / "state.json").is_file()

    def save(self, model, state: dict, best_weights) -> None:
        tmp = self.dir.with_name(f".{CHECKPOINT_DIR}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        np.savez(tmp / "weights.npz", *[np.asarray(w) for w in model.get_weights()])
        np.savez(tmp / "optimizer.npz", *[np.asarray(v) for v in model.optimizer.variables])
        if best_weights is not None:
            np.savez(tmp / "best.npz", *best_weights)
        write_json(tmp / "state.json", state)
        old = self.dir.with_name(f".{CHECKPOINT_DIR}.old")
        shutil.rmtree(old, ignore_errors=True)
        if self.dir.exists():
            os.replace(self.dir, old)
        os.replace(tmp, self.dir)
        shutil.rmtree(old, ignore_errors=True)

    def state(self) -> dict:
        return json.loads((self.dir / "state.json").read_text())

    @staticmethod
    def _arrays(path: Path):
        with np.load(path) as z:
            return [z[f"arr_{i}"] for i in range(len(z.files))]

    def restore_weights(self, model) -> None:
        model.set_weights(self._arrays(self.dir / "weights.npz"))

    def restore_optimizer(self, model) -> None:
        opt = model.optimizer
        if not opt.built:
            opt.build(model.trainable_variables)
        values = self._arrays(self.dir / "optimizer.npz")
        if len(values) != len(opt.variables):
            raise ValueError(f"{self.dir}: optimizer state does not match the model (corrupt checkpoint)")
        for v, val in zip(opt.variables, values):
            v.assign(val)

    def best_weights(self):
        p = self.dir / "best.npz"
        return self._arrays(p) if p.is_file() else None


# ---------------------------------------------------------------------------- validation mAP


def validation_map(model, fs: FeatureSet, split: str = "val", k: int = 50) -> float:
    """Mean mAP@k (independent protocol) over both directions of the current stage's trained pairs."""
    from cvs_tf.evaluation.metrics import map_at_k

    emb = {}
    scores = []
    for a, b in model.active_pairs():
        for m in (a, b):
            if m not in emb:
                emb[m] = model.embed(m, fs.x(m, split)).numpy()
        for q, r in ((a, b), (b, a)):
            if len(emb[q]) and len(emb[r]):
                scores.append(map_at_k(emb[q], emb[r], fs.y(q, split), fs.y(r, split), k=k))
    return float(np.mean(scores)) if scores else float("nan")


# ---------------------------------------------------------------------------- epoch-end callback


class EpochEnd(keras.callbacks.Callback):
    """In this order at each epoch end: val mAP, early stopping, checkpoint, TensorBoard, progress line."""

    def __init__(self, trainer, stage: int, state: dict):
        super().__init__()
        self.t = trainer
        self.stage = stage
        self.state = state
        self.best_weights = trainer.checkpoint.best_weights() if state.get("epoch", 0) > 0 else None

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        t, cfg = self.t, self.t.config.train
        logs["val_map"] = validation_map(self.model, t.fs, "val", cfg.eval_k)
        logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        st = self.state
        st["history"].append({"epoch": epoch + 1, **logs})
        monitor = "val_loss" if cfg.early_stopping in ("val_loss",) else "val_map"
        value = logs.get(monitor)
        sign = -1.0 if monitor == "val_loss" else 1.0
        if value is not None and np.isfinite(value) and (st["best"] is None or sign * value > sign * st["best"]):
            st["best"], st["best_epoch"], st["wait"] = value, epoch + 1, 0
            self.best_weights = [np.asarray(w) for w in self.model.get_weights()]
        else:
            st["wait"] += 1
        stop = cfg.early_stopping != "none" and st["wait"] >= cfg.patience
        st["epoch"] = epoch + 1
        st["stage_done"] = stop or epoch + 1 >= cfg.epochs
        t.checkpoint.save(self.model, {"stage": self.stage, **st}, self.best_weights)
        t.write_scalars(self.stage, epoch + 1, logs)
        if stop:
            self.model.stop_training = True
        t.log(
            f"  stage {self.stage + 1} epoch {epoch + 1}/{cfg.epochs}: "
            + " ".join(f"{k}={v:.4f}" for k, v in logs.items() if k in ("loss", "val_loss", "val_map", "triplet", "classification"))
            + (f"  (early stop: best {monitor} {st['best']:.4f} at epoch {st['best_epoch']})" if stop else "")
        )


# ---------------------------------------------------------------------------- trainer


class Trainer:
    """Runs every stage of a space into RUN_DIR (see docs/training.md for the layout)."""

    def __init__(self, config: RunConfig, run_dir: str | os.PathLike, *, verbose: int | str = "auto",
                 callbacks=None, log=None):
        self.config = config.validate()
        self.run_dir = Path(run_dir)
        self.checkpoint = Checkpoint(self.run_dir)
        self.extra_callbacks = list(callbacks or [])
        self.verbose = (1 if sys.stdout.isatty() else 2) if verbose == "auto" else verbose
        self._log = log or (lambda msg: print(msg, flush=True))
        self._writers = {}
        self.fs: FeatureSet | None = None
        self.model = None

    def log(self, msg: str):
        self._log(msg)

    # ------------------------------------------------------------------ setup
    def _load_data(self):
        path = dataset_path(self.config.train.dataset)
        self.fs = load_feature_set(path)
        # the load-time checks mapped every array in; the banks copy what training needs, the
        # rest is read again batch by batch (validation mAP, final tables)
        release_feature_set(self.fs)
        self.dataset_dir = path

    def resolved_config(self) -> dict:
        stages = resolve_stages(self.config, self.fs)
        return {
            **self.config.to_dict(),
            "resolved": {
                "package_version": cvs_tf.__version__,
                "tensorflow_version": tf.__version__,
                "keras_version": keras.__version__,
                "seed": self.config.train.seed,
                "dataset_name": self.fs.name,
                "dataset_dir": str(self.dataset_dir),
                "dataset_manifest_sha256": self.fs.manifest_sha256,
                "data_label": self.fs.data_label,
                "stages": stages,
            },
        }

    def _build(self):
        cfg = self.config.train
        keras.utils.set_random_seed(cfg.seed)
        policy = keras.mixed_precision.global_policy()
        if cfg.mixed_precision:
            gpu = bool(tf.config.list_physical_devices("GPU"))
            keras.mixed_precision.set_global_policy("mixed_float16" if gpu else "mixed_bfloat16")
        try:
            self.model = build_model(self.config, self.fs)
        finally:
            keras.mixed_precision.set_global_policy(policy)

    def _compile(self):
        self.model.compile(optimizer=keras.optimizers.Adam(self.config.train.lr), jit_compile=self.config.train.jit)

    # ------------------------------------------------------------------ tensorboard
    def write_scalars(self, stage: int, step: int, logs: dict):
        name = self.model.stage_name(stage)
        for split in ("train", "validation"):
            key = (stage, split)
            if key not in self._writers:
                self._writers[key] = tf.summary.create_file_writer(str(self.run_dir / "tensorboard" / f"stage{name}" / split))
            writer = self._writers[key]
            with writer.as_default(step=step):
                for k, v in logs.items():
                    is_val = k.startswith("val_")
                    if (split == "validation") != is_val:
                        continue
                    tag = k[4:] if is_val else k
                    group = "loss" if tag not in ("lr", "map") else "optim" if tag == "lr" else "metric"
                    tf.summary.scalar(f"{group}/{tag}", v)
            writer.flush()

    # ------------------------------------------------------------------ run
    def run(self, resume: bool = False) -> dict:
        self._load_data()
        start_stage, state = 0, None
        if resume and self.checkpoint.exists():
            ck = self.checkpoint.state()
            start_stage = ck["stage"]
            state = {k: v for k, v in ck.items() if k != "stage"}
            if state.get("stage_done"):
                start_stage, state = start_stage + 1, None
        elif self.run_dir.exists() and any(self.run_dir.iterdir()) and not resume:
            raise FileExistsError(f"{self.run_dir}: run directory is not empty (use --resume or a new --out)")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._build()
        resolved = self.resolved_config()
        write_json(self.run_dir / "config.json", resolved)
        history = self._read_json("history.json", {"stages": []})
        reports = self._read_json("stages.json", [])
        if resume and self.checkpoint.exists():
            self.checkpoint.restore_weights(self.model)
        model = self.model
        for k in range(start_stage, model.num_stages):
            model.set_stage(k, recompile=False)
            self._compile()
            st = state if (state is not None and k == start_stage) else {"epoch": 0, "best": None, "best_epoch": 0, "wait": 0, "history": []}
            if st["epoch"] > 0:
                self.checkpoint.restore_optimizer(model)
            report = model.parameter_report()
            self.log(f"stage {k + 1}/{model.num_stages} [{model.stage_name(k)}]: modalities {', '.join(model.modalities)}; "
                     f"{report['attention_blocks']} attention block(s); {report['trainable_params']:,} trainable / "
                     f"{report['frozen_params']:,} frozen params; data: {self.fs.name} ({self.fs.data_label})"
                     + (f"; resuming after epoch {st['epoch']}" if st["epoch"] else ""))
            best = self._train_stage(k, st)
            if best is not None:
                model.set_weights(best)
            save_model_atomic(model, self.run_dir / "stages" / model.stage_name(k) / "model.keras")
            history["stages"] = [h for h in history["stages"] if h["stage"] != k + 1]
            history["stages"].append({"stage": k + 1, "name": model.stage_name(k), "epochs": st["history"],
                                      "best_epoch": st["best_epoch"], "monitor": self.config.train.early_stopping})
            reports = [r for r in reports if r["stage"] != k + 1] + [report]
            write_json(self.run_dir / "history.json", history)
            write_json(self.run_dir / "stages.json", reports)
            st["stage_done"] = True
            self.checkpoint.save(model, {"stage": k, **st}, None)
            state = None
        for w in self._writers.values():
            w.close()
        metrics = self.final_metrics(reports)
        write_json(self.run_dir / "metrics.json", metrics)
        return metrics

    def _read_json(self, name, default):
        p = self.run_dir / name
        return json.loads(p.read_text()) if p.is_file() else default

    def _train_stage(self, k: int, st: dict):
        cfg = self.config.train
        model = self.model
        needed = sorted({m for p in model.active_pairs() for m in p}, key=model.all_modalities.index)
        # drop the previous stage's bank (and, via compile, the train function capturing it)
        # before building this stage's: the two never coexist in memory
        model.attach_bank(None)
        gc.collect()
        bank = FeatureBank(self.fs, needed, "train")
        if bank.dropped_classes:
            names = [self.fs.classes[c] for c in bank.dropped_classes]
            self.log(f"  note: classes without items in every modality of this stage are not sampled: {', '.join(names)}")
        val_bank = FeatureBank(self.fs, needed, "val")
        steps = cfg.steps_per_epoch or steps_per_epoch(bank, cfg.batch_size)
        val_steps = steps_per_epoch(val_bank, cfg.batch_size)
        model.attach_bank(bank)
        train_ds = index_dataset(bank, cfg.batch_size, seed=cfg.seed * 1000 + k, start_step=st["epoch"] * steps, steps=steps)
        val_ds = index_dataset(val_bank, cfg.batch_size, seed=cfg.seed * 1000 + 500 + k, num_steps=val_steps)
        val_ds = val_ds.map(lambda idx: val_bank.gather(idx))  # validation gathers from its own bank
        end = EpochEnd(self, k, st)
        if st["epoch"] >= cfg.epochs or st.get("stage_done"):
            return end.best_weights
        model.fit(
            train_ds,
            epochs=cfg.epochs,
            initial_epoch=st["epoch"],
            steps_per_epoch=steps,
            validation_data=val_ds,
            validation_steps=val_steps,
            callbacks=[end, *self.extra_callbacks],
            verbose=self.verbose,
            shuffle=False,  # batches come from the seeded index pipeline
        )
        return end.best_weights

    def final_metrics(self, reports) -> dict:
        """Validation and test mAP@k tables of the final model (independent protocol), also written
        as Markdown/CSV/JSON under RUN_DIR/eval/."""
        from cvs_tf.evaluation.table import cross_modal_table, table_record, write_table

        k = self.config.train.eval_k
        out = {"protocol": "independent", "k": k, "data_label": self.fs.data_label,
               "dataset": self.fs.name, "stages": reports}
        self.tables = {}
        for split in ("val", "test"):
            df = cross_modal_table(self.model, split=split, k=k, dataset=self.fs, modalities=self.model.modalities)
            write_table(df, self.run_dir / "eval" / f"{split}-independent-k{k}")
            self.tables[split] = df
            out[split] = table_record(df)
        return out
