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
from cvs_tf.config import ConfigError, RunConfig
from cvs_tf.data.pipeline import FeatureBank, index_dataset, release_feature_set, steps_per_epoch
from cvs_tf.data.registry import dataset_path
from cvs_tf.data.store import FeatureSet, load_feature_set
from cvs_tf.models.factory import build_model, resolve_stages
from cvs_tf.training.lock import LOCK_FILE, RunDirLock
from cvs_tf.training.run_dir import (
    RunDirError,
    clear_failed_start,
    has_completed_work,
    is_restartable,
    locate_dataset,
    read_run_config,
)

CHECKPOINT_DIR = "checkpoint"
STATE_FIELDS = {"stage": int, "epoch": int, "wait": int, "best_epoch": int, "history": list}


class TrainingDivergedError(ValueError):
    """The training loss became NaN or Inf; the run stopped before checkpointing that epoch."""


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

    def recover(self) -> None:
        """A kill between the two renames of :meth:`save` leaves only ``.checkpoint.old``: put it back."""
        old = self.dir.with_name(f".{CHECKPOINT_DIR}.old")
        if not self.dir.exists() and (old / "state.json").is_file():
            os.replace(old, self.dir)

    def validate(self) -> dict:
        """Read ``state.json`` and every array file once, so a corrupt checkpoint is refused before anything runs."""
        state = self.state()
        for name in ("weights.npz", "optimizer.npz"):
            self._arrays(self.dir / name)
        if (self.dir / "best.npz").is_file():
            self._arrays(self.dir / "best.npz")
        return state

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
        self._check_finite(epoch, logs)
        if t.has_val:
            logs["val_map"] = validation_map(self.model, t.fs, "val", cfg.eval_k)
        logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        st = self.state
        st["history"].append({"epoch": epoch + 1, **logs})
        monitor = "val_loss" if cfg.early_stopping in ("val_loss",) else "val_map"
        value = logs.get(monitor)
        sign = -1.0 if monitor == "val_loss" else 1.0
        if not t.has_val:  # no validation split: no selection, the last epoch is kept
            st["best_epoch"], st["wait"] = epoch + 1, 0
        elif value is not None and np.isfinite(value) and (st["best"] is None or sign * value > sign * st["best"]):
            st["best"], st["best_epoch"], st["wait"] = value, epoch + 1, 0
            self.best_weights = [np.asarray(w) for w in self.model.get_weights()]
        else:
            st["wait"] += 1
        stop = cfg.early_stopping != "none" and st["wait"] >= cfg.patience
        st["epoch"] = epoch + 1
        st["stage_done"] = stop or epoch + 1 >= cfg.epochs
        t.checkpoint.save(self.model, {"stage": self.stage, **st}, self.best_weights)
        t.completed_epochs += 1
        t.write_scalars(self.stage, epoch + 1, logs)
        if stop:
            self.model.stop_training = True
        t.log(
            f"  stage {self.stage + 1} epoch {epoch + 1}/{cfg.epochs}: "
            + " ".join(f"{k}={v:.4f}" for k, v in logs.items() if k in ("loss", "val_loss", "val_map", "triplet", "classification"))
            + (f"  (early stop: best {monitor} {st['best']:.4f} at epoch {st['best_epoch']})" if stop else "")
        )

    def _check_finite(self, epoch: int, logs: dict) -> None:
        """A NaN/Inf training loss stops the run here, before this epoch is checkpointed."""
        bad = {k: v for k, v in logs.items() if not k.startswith("val_") and k != "lr" and not np.isfinite(v)}
        if not bad and "loss" in logs:
            return
        if "loss" not in logs:
            bad = {"loss": float("nan")}
        key = "loss" if "loss" in bad else sorted(bad)[0]
        kept = (f"{self.t.checkpoint.dir} keeps the last good epoch ({self.state['epoch']})" if self.state["epoch"]
                else ("the checkpoint keeps the previous stage" if self.stage else "no epoch completed, nothing kept"))
        raise TrainingDivergedError(
            f"stage {self.stage + 1} epoch {epoch + 1}: training {key} is {bad[key]} (diverged); training stopped "
            f"and this epoch was not checkpointed; {kept}; try a smaller --lr in a new run"
        )


# ---------------------------------------------------------------------------- trainer


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


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
        self.has_val = True
        self.completed_epochs = 0  # epochs checkpointed by this process
        self._saved_resolved: dict | None = None  # config.json's "resolved" of the run being resumed

    def log(self, msg: str):
        self._log(msg)

    # ------------------------------------------------------------------ setup
    def _load_data(self):
        if self._saved_resolved is not None:  # resume: the very set the run was trained on (sha256 checked)
            self.fs, path = locate_dataset(self.config, self._saved_resolved)
        else:
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
                "dataset_dir": str(Path(self.dataset_dir).resolve()) if self.dataset_dir else None,
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
        """Train every stage into the run directory (``resume``: continue it from its last completed epoch).

        Everything that can be checked is checked before the directory is created or touched:
        the dataset (on resume: the same manifest sha256), the memory of a batch, modalities and
        stage plan, the validation split, the model and (on resume) the checkpoint. The directory
        is then locked for the whole run (:class:`RunDirLock`).
        """
        from cvs_tf.training.memory import check_batch_memory

        if resume:
            self._check_resumable()
        self._load_data()
        check_batch_memory(self.config, self.fs)
        self._check_validation_split()
        self._build()
        created = not self.run_dir.exists()
        lock = self._lock(created, resume)
        fresh = None  # known only once the directory's state was checked under the lock
        try:
            fresh = self._prepare_dir(resume)
            return self._run_locked(not fresh)
        except BaseException:
            if fresh and self.completed_epochs == 0:  # nothing worth keeping: leave no partial output
                self._remove_failed_start(created, lock)
            raise
        finally:
            for w in self._writers.values():
                w.close()
            self._writers = {}
            lock.release()
            if created and fresh and self.completed_epochs == 0:
                try:
                    self.run_dir.rmdir()
                except OSError:
                    pass

    def _check_resumable(self):
        if not (self.run_dir / "config.json").is_file():
            raise RunDirError(f"{self.run_dir / 'config.json'}: no run to resume (missing config.json)")
        saved, resolved = read_run_config(self.run_dir)
        if saved.to_dict() != RunConfig.from_dict(self.config.to_dict()).to_dict():
            a, b = _flatten(saved.to_dict()), _flatten(self.config.to_dict())
            diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            raise ConfigError(f"{self.run_dir / 'config.json'}: the run was trained with other settings "
                              f"({', '.join(diff)}); resume uses the saved config")
        self._saved_resolved = resolved

    def _check_validation_split(self):
        """No validation items: only ``early_stopping='none'`` can train (val loss and val mAP are skipped)."""
        stages = resolve_stages(self.config, self.fs)
        mods = list(dict.fromkeys(m for s in stages for m in s))
        empty = [m for m in mods if self.fs.count(m, "val") == 0]
        self.has_val = not empty
        if empty and self.config.train.early_stopping != "none":
            raise ConfigError(
                f"dataset {self.fs.name} has no validation items for {', '.join(empty)} (a set made with "
                f"--val-fraction 0): train.early_stopping {self.config.train.early_stopping} needs them; "
                "use --early-stopping none (no model selection, the last epoch is kept)"
            )

    def _lock(self, created: bool, resume: bool) -> RunDirLock:
        lock = RunDirLock(self.run_dir)
        if not (created or resume or lock.path.exists()) and self.run_dir.is_dir():
            self._refuse_used_dir()  # before a lock file is left in a directory that is not ours
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise RunDirError(f"{self.run_dir}: exists and is not a directory") from None
        try:
            return lock.acquire()
        except BaseException:
            if created:
                try:
                    self.run_dir.rmdir()
                except OSError:
                    pass
            raise

    def _prepare_dir(self, resume: bool) -> bool:
        """Under the lock: check the directory's state; True for a fresh start."""
        if resume:
            self.checkpoint.recover()
            if self.checkpoint.exists():
                self.checkpoint.validate()
                return False
            if has_completed_work(self.run_dir):
                raise RunDirError(f"{self.checkpoint.dir / 'state.json'}: missing, but the run has finished "
                                  "work (corrupt run directory); nothing was changed")
            self.log(f"note: {self.run_dir} holds no completed epoch: starting it from the beginning")
            clear_failed_start(self.run_dir)
            return True
        if any(p.name != LOCK_FILE for p in self.run_dir.iterdir()):
            self._refuse_used_dir()
            self.log(f"note: {self.run_dir} holds a failed start (no completed epoch): starting it afresh")
            clear_failed_start(self.run_dir)
        return True

    def _refuse_used_dir(self):
        if any(p.name != LOCK_FILE for p in self.run_dir.iterdir()) and not is_restartable(self.run_dir):
            raise RunDirError(f"{self.run_dir}: run directory is not empty (use --resume or a new --out)")

    def _remove_failed_start(self, created: bool, lock: RunDirLock):
        try:
            clear_failed_start(self.run_dir)
            if created:
                lock.path.unlink(missing_ok=True)
        except OSError:
            pass

    def _run_locked(self, resume: bool) -> dict:
        start_stage, state = 0, None
        if resume:
            ck = self.checkpoint.state()
            start_stage = ck["stage"]
            state = {k: v for k, v in ck.items() if k != "stage"}
            if state.get("stage_done"):
                start_stage, state = start_stage + 1, None
            self.checkpoint.restore_weights(self.model)
        else:
            write_json(self.run_dir / "config.json", self.resolved_config())
        history = self._read_json("history.json", {"stages": []})
        reports = self._read_json("stages.json", [])
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
                     + (f"; resuming after epoch {st['epoch']}" if st["epoch"] else "")
                     + ("" if self.has_val else "; no validation split: no model selection"))
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
        if not p.is_file():
            return default
        try:
            value = json.loads(p.read_text())
        except (OSError, ValueError) as exc:
            raise RunDirError(f"{p}: corrupt ({' '.join(str(exc).split())[:160]})") from None
        if type(value) is not type(default):
            raise RunDirError(f"{p}: corrupt (expected a JSON {type(default).__name__})")
        return value

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
        steps = cfg.steps_per_epoch or steps_per_epoch(bank, cfg.batch_size)
        val_ds = val_steps = None
        if self.has_val:
            val_bank = FeatureBank(self.fs, needed, "val")
            val_steps = steps_per_epoch(val_bank, cfg.batch_size)
            val_ds = index_dataset(val_bank, cfg.batch_size, seed=cfg.seed * 1000 + 500 + k, num_steps=val_steps)
            val_ds = val_ds.map(lambda idx: val_bank.gather(idx))  # validation gathers from its own bank
        model.attach_bank(bank)
        train_ds = index_dataset(bank, cfg.batch_size, seed=cfg.seed * 1000 + k, start_step=st["epoch"] * steps, steps=steps)
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
        """Validation and test mAP@k and mAP@all tables of the final model (independent protocol),
        also written as Markdown/CSV/JSON under RUN_DIR/eval/.

        Keys: ``val``/``test`` (mAP@k, k = ``train.eval_k``) and ``val_all``/``test_all`` (mAP@all);
        without a validation split ``val`` and ``val_all`` are None and ``splits`` lists ``test`` only.
        """
        from cvs_tf.evaluation.table import cross_modal_table, table_record, write_table

        k = self.config.train.eval_k
        splits = ["val", "test"] if self.has_val else ["test"]
        out = {"protocol": "independent", "k": k, "data_label": self.fs.data_label,
               "dataset": self.fs.name, "stages": reports, "splits": splits}
        self.tables = {}
        for split in ("val", "test"):
            if split not in splits:
                out[split] = out[f"{split}_all"] = None
                continue
            for kk, key in ((k, split), (None, f"{split}_all")):
                df = cross_modal_table(self.model, split=split, k=kk, dataset=self.fs, modalities=self.model.modalities)
                write_table(df, self.run_dir / "eval" / f"{split}-independent-k{'all' if kk is None else kk}")
                self.tables[key] = df
                out[key] = table_record(df)
        return out
