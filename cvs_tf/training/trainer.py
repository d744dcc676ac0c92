"""Stage-wise training of a space into a run directory: the Trainer, its seams (feature set, initial weights, checkpoint policy) and its TrainResult."""

from __future__ import annotations

import gc
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

import cvs_tf
from cvs_tf.config import ConfigError, RunConfig
from cvs_tf.data.pipeline import FeatureBank, feature_dataset, release_feature_set, steps_per_epoch
from cvs_tf.data.registry import dataset_path
from cvs_tf.data.store import FeatureSet, load_feature_set
from cvs_tf.models.factory import build_model
from cvs_tf.plan import RunPlan
from cvs_tf.report.card import finish_run
from cvs_tf.training.callbacks import EpochEnd, TensorBoardScalars, diverged_at_evaluation
from cvs_tf.training.checkpoint import Checkpoint, read_json, save_model_atomic, write_json
from cvs_tf.training.data_checks import check_instance_term
from cvs_tf.training.determinism import op_determinism
from cvs_tf.training.distribute import (
    cluster_failures,
    distributed_dataset,
    effective_jit,
    is_chief,
    make_strategy,
    replica_batch_specs,
    replica_count,
)
from cvs_tf.training.run_dir import RunDirError, locate_dataset, read_run_config
from cvs_tf.training.run_setup import (
    WorkerCheckpoint,
    lock_run_dir,
    prepare_run_dir,
    remove_failed_start,
)
from cvs_tf.training.warmup import compile_steps

__all__ = ["TrainResult", "Trainer"]


@dataclass
class TrainResult:
    """What :meth:`Trainer.run` returns: ``metrics`` (as in ``metrics.json``), ``tables``/``tables_all`` (each
    evaluated split's mAP@k (k = ``train.eval_k``) / mAP@all table, independent protocol) and the final ``model``."""

    metrics: dict
    tables: dict
    tables_all: dict
    model: Any
    run_dir: Path


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def make_optimizer(train) -> keras.optimizers.Optimizer:
    """Adam(lr), or AdamW(lr, weight_decay) when ``train.weight_decay`` > 0 (a :class:`TrainConfig`)."""
    if train.weight_decay > 0:
        return keras.optimizers.AdamW(train.lr, weight_decay=train.weight_decay)
    return keras.optimizers.Adam(train.lr)


def _new_stage_state() -> dict:
    return {"epoch": 0, "best": None, "best_epoch": 0, "wait": 0, "history": []}


class Trainer:
    """Runs every stage of a space into RUN_DIR (see docs/training.md for the layout).

    Seams: ``featureset`` (a loaded FeatureSet instead of ``config.train.dataset``, recorded as usual),
    ``init_weights`` (arrays in ``model.get_weights()`` order, set before the first stage), ``checkpoint``
    (False: no checkpoint directory, no ``resume``), ``callbacks`` (extra Keras callbacks for every ``fit``),
    ``log`` (the progress sink), ``test_split`` (False: test is never read, ``metrics["test"]`` is None, as
    tuning needs), ``selection`` (``resolved.selection`` in config.json; its ``stage_epochs`` fix each stage's
    epochs under ``train.select cvK``: training/selection.py).
    """

    def __init__(self, config: RunConfig, run_dir: str | os.PathLike, *, featureset: FeatureSet | None = None,
                 init_weights=None, checkpoint: bool = True, verbose: int | str = "auto", callbacks=None, log=None,
                 test_split: bool = True, selection: dict | None = None):
        self.config = config.validate()
        self._selection = selection
        if config.train.select != "val" and "stage_epochs" not in (selection or {}):
            raise ConfigError(f"train.select {config.train.select}: its epochs come from cvs_tf.training.selection")
        self.run_dir = Path(run_dir)
        self._given_fs = featureset
        self._init_weights = None if init_weights is None else list(init_weights)
        self._test_split = bool(test_split)
        self._checkpoint = Checkpoint(self.run_dir) if checkpoint else None
        self._callbacks = list(callbacks or [])
        self._verbose = (1 if sys.stdout.isatty() else 2) if verbose == "auto" else verbose
        self._log = log or (lambda msg: print(msg, flush=True))
        self._scalars = TensorBoardScalars(self.run_dir / "tensorboard")
        self._fs: FeatureSet | None = None
        self._dataset_dir = None
        self._model = None
        self._plan: RunPlan | None = None  # built once by run(), from the config and the loaded feature set
        self._has_val = True
        self._completed_epochs = 0  # epochs finished (and checkpointed) by this process
        self._strategy = tf.distribute.get_strategy()  # made from train.strategy by run()
        self._saved_resolved: dict | None = None  # config.json's "resolved" of the run being resumed

    @property
    def plan(self) -> RunPlan | None:
        """The run's :class:`~cvs_tf.plan.RunPlan` (None before :meth:`run` built it)."""
        return self._plan

    # ------------------------------------------------------------------ setup
    def _load_data(self):
        if self._given_fs is not None:
            self._fs, self._dataset_dir = self._given_fs, self._given_fs.path
            want = (self._saved_resolved or {}).get("dataset_manifest_sha256")
            if want is not None and self._fs.manifest_sha256 != want:
                raise RunDirError(f"{self.run_dir / 'config.json'}: the run was trained on another feature set "
                                  f"(manifest sha256 {want[:12]}, given {self._fs.manifest_sha256[:12]})")
            return
        if self._saved_resolved is not None:  # resume: the very set the run was trained on (sha256 checked)
            self._fs, self._dataset_dir = locate_dataset(self.config, self._saved_resolved)
        else:
            self._dataset_dir = dataset_path(self.config.train.dataset)
            self._fs = load_feature_set(self._dataset_dir)
        # the load-time checks mapped every array in; the banks copy what training needs, the
        # rest is read again batch by batch (validation mAP, final tables)
        release_feature_set(self._fs)

    def _resolved_config(self) -> dict:
        fs = self._fs
        return {
            **self.config.to_dict(),
            "resolved": {
                "package_version": cvs_tf.__version__,
                "tensorflow_version": tf.__version__,
                "keras_version": keras.__version__,
                "seed": self.config.train.seed,
                "dataset_name": fs.name,
                "dataset_dir": str(Path(self._dataset_dir).resolve()) if self._dataset_dir else None,
                "dataset_manifest_sha256": fs.manifest_sha256,
                "data_label": fs.data_label,
                "stages": self._plan.stage_lists(),
                **({"selection": self._selection} if self._selection else {}),
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
            with self._strategy.scope():
                self._model = build_model(self.config, self._fs, self._plan)
        finally:
            keras.mixed_precision.set_global_policy(policy)
        self._model.fit_standardization(self._fs)  # (standardize only) train-split statistics; resume restores them
        if self._init_weights is not None:
            try:
                self._model.set_weights(self._init_weights)
            except ValueError as exc:
                raise ValueError(f"init_weights do not match the model ({' '.join(str(exc).split())[:160]})") from None

    def _compile(self):
        jit = effective_jit(self.config.train.jit, self._strategy, self.config.train.deterministic)
        self._model.compile(optimizer=make_optimizer(self.config.train), jit_compile=jit)

    # ------------------------------------------------------------------ run
    def run(self, resume: bool = False) -> TrainResult:
        """Train every stage into the run directory (``resume``: continue it from its last completed epoch).

        Everything that can be checked (dataset and, on resume, its sha256; the run's plan: modalities,
        stages, validation split, replicas; batch memory; model; checkpoint) is checked before the
        directory is touched, then it is locked for the run (:class:`RunDirLock`); a non-chief worker
        writes nothing there.
        ``train.deterministic`` turns TensorFlow's op determinism on for the run (restored after it).
        """
        # first: a multi-worker strategy must exist before any other TensorFlow op of the process
        self._strategy = make_strategy(self.config.train.strategy)
        with op_determinism(self.config.train.deterministic):
            return self._run(resume)

    def _run(self, resume: bool) -> TrainResult:
        from cvs_tf.training.memory import check_batch_memory

        if resume:
            self._check_resumable()
        self._load_data()
        self._plan = RunPlan.build(self.config, self._fs, replicas=replica_count(self._strategy),
                                   test_split=self._test_split)
        self._has_val = self._plan.validation
        check_batch_memory(self.config, self._fs, plan=self._plan)
        check_instance_term(self.config, self._fs)
        self._build()
        if not is_chief(self._strategy):
            return self._run_worker(resume)
        created = not self.run_dir.exists()
        lock = lock_run_dir(self.run_dir, created, resume)
        fresh = None  # known only once the directory's state was checked under the lock
        try:
            fresh = prepare_run_dir(self.run_dir, self._checkpoint, resume, self._log)
            return self._run_locked(not fresh)
        except BaseException:
            if fresh and self._completed_epochs == 0:  # nothing worth keeping: leave no partial output
                remove_failed_start(self.run_dir, created, lock)
            raise
        finally:
            self._scalars.close()
            lock.release()
            if created and fresh and self._completed_epochs == 0:
                try:
                    self.run_dir.rmdir()
                except OSError:
                    pass

    def _run_worker(self, resume: bool) -> TrainResult:
        """A non-chief worker: the same steps (collectives) as the chief, resuming from the chief's
        checkpoint; its own records go to a scratch directory, removed at the end."""
        shared, scratch = self.run_dir, Path(tempfile.mkdtemp(prefix="cvs_tf-worker-"))
        self.run_dir, self._scalars = scratch, TensorBoardScalars(scratch / "tensorboard")
        if self._checkpoint is not None:
            self._checkpoint = WorkerCheckpoint(shared)
        try:
            result = self._run_locked(resume and self._checkpoint is not None and self._checkpoint.exists())
            result.run_dir = shared
            return result
        finally:
            self._scalars.close()
            self.run_dir = shared
            shutil.rmtree(scratch, ignore_errors=True)

    def _check_resumable(self):
        if self._checkpoint is None:
            raise ValueError("resume needs a Trainer with checkpoint=True")
        if not (self.run_dir / "config.json").is_file():
            raise RunDirError(f"{self.run_dir / 'config.json'}: no run to resume (missing config.json)")
        saved, resolved = read_run_config(self.run_dir)
        if saved.to_dict() != RunConfig.from_dict(self.config.to_dict()).to_dict():
            a, b = _flatten(saved.to_dict()), _flatten(self.config.to_dict())
            diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            raise ConfigError(f"{self.run_dir / 'config.json'}: the run was trained with other settings "
                              f"({', '.join(diff)}); resume uses the saved config")
        self._saved_resolved = resolved

    def _run_locked(self, resume: bool) -> TrainResult:
        start_stage, state = 0, None
        if resume:
            ck = self._checkpoint.state()
            start_stage = ck["stage"]
            state = {k: v for k, v in ck.items() if k != "stage"}
            if state.get("stage_done"):
                start_stage, state = start_stage + 1, None
            self._checkpoint.restore_weights(self._model)
        else:
            write_json(self.run_dir / "config.json", self._resolved_config())
        records = {"history": read_json(self.run_dir / "history.json", {"stages": []}),
                   "reports": read_json(self.run_dir / "stages.json", [])}
        for k in range(start_stage, self._model.num_stages):
            self._run_stage(k, state if (state is not None and k == start_stage) else _new_stage_state(), records)
        self._scalars.close()
        metrics, tables, tables_all = self.final_metrics(records["reports"])
        write_json(self.run_dir / "metrics.json", metrics)
        finish_run(self.run_dir, self._model, self._fs, seed=self.config.train.seed)  # calibration.json, MODEL_CARD.md
        return TrainResult(metrics=metrics, tables=tables, tables_all=tables_all, model=self._model,
                           run_dir=self.run_dir)

    def _run_stage(self, k: int, st: dict, records: dict) -> None:
        """Train stage ``k`` from state ``st``; save its model, history and report; checkpoint it as done."""
        model = self._model
        with self._strategy.scope():  # the stage's trackers and optimizer are replicated variables
            model.set_stage(k, recompile=False)
            self._compile()
            if st["epoch"] > 0:
                self._checkpoint.restore_optimizer(model)
        report = model.parameter_report()
        self._log(f"stage {k + 1}/{model.num_stages} [{model.stage_name(k)}]: modalities {', '.join(model.modalities)}; "
                  f"{report['attention_blocks']} attention block(s); {report['trainable_params']:,} trainable / "
                  f"{report['frozen_params']:,} frozen params; data: {self._fs.name} ({self._fs.data_label})"
                  + (f"; resuming after epoch {st['epoch']}" if st["epoch"] else "")
                  + ("" if self._has_val else "; no validation split: no model selection"))
        best = self._train_stage(k, st)
        if best is not None:
            model.set_weights(best)
        save_model_atomic(model, self.run_dir / "stages" / model.stage_name(k) / "model.keras")
        history = records["history"]
        history["stages"] = [h for h in history["stages"] if h["stage"] != k + 1]
        history["stages"].append({"stage": k + 1, "name": model.stage_name(k), "epochs": st["history"],
                                  "best_epoch": st["best_epoch"], "monitor": self.config.train.early_stopping})
        records["reports"] = [r for r in records["reports"] if r["stage"] != k + 1] + [report]
        write_json(self.run_dir / "history.json", history)
        write_json(self.run_dir / "stages.json", records["reports"])
        st["stage_done"] = True
        if self._checkpoint is not None:
            self._checkpoint.save(model, {"stage": k, **st}, None)

    def _datasets(self, k: int, st: dict, needed: list[str]):
        """``(train_ds, steps, val_ds, val_steps)`` of stage ``k``: tf.data gathers the batches from the
        stage's banks, distributed over the replicas (each gets its block of every global batch)."""
        cfg, fs = self.config.train, self._fs
        bank = FeatureBank(fs, needed, "train")
        if bank.dropped_classes:
            names = [fs.classes[c] for c in bank.dropped_classes]
            self._log(f"  note: classes without items in every modality of this stage are not sampled: {', '.join(names)}")
        steps = cfg.steps_per_epoch or steps_per_epoch(bank, cfg.batch_size)
        val_ds = val_steps = None
        if self._has_val:
            val_bank = FeatureBank(fs, needed, "val")
            val_steps = steps_per_epoch(val_bank, cfg.batch_size)
            # the same val_steps batches, repeated: Keras keeps a distributed evaluation iterator across epochs
            val_ds = distributed_dataset(self._strategy, lambda shard: feature_dataset(
                val_bank, cfg.batch_size, seed=cfg.seed * 1000 + 500 + k, num_steps=val_steps, shard=shard).repeat())
        train_ds = distributed_dataset(self._strategy, lambda shard: feature_dataset(
            bank, cfg.batch_size, seed=cfg.seed * 1000 + k, start_step=st["epoch"] * steps, steps=steps, shard=shard))
        return train_ds, steps, val_ds, val_steps

    def _compile_steps(self, needed: list[str]) -> None:
        """Trace and compile the stage's train and test steps on zero batches, before its banks exist (warmup.py)."""
        specs = replica_batch_specs(self._fs, needed, self._plan)
        compile_steps(self._model, self._strategy, specs["train"], specs["val"] if self._has_val else None,
                      lambda make: distributed_dataset(self._strategy, make))

    def _train_stage(self, k: int, st: dict):
        cfg, model = self.config.train, self._model
        if "stage_epochs" in (self._selection or {}):  # epochs chosen by cross-validation
            cfg = replace(cfg, epochs=self._selection["stage_epochs"][k])
        needed = sorted({m for p in model.active_pairs() for m in p}, key=model.all_modalities.index)
        end = EpochEnd(k, st, train=cfg, scalars=self._scalars, log=self._log, checkpoint=self._checkpoint,
                       val_set=self._fs if self._has_val else None, on_epoch=self._count_epoch)
        if st["epoch"] >= cfg.epochs or st.get("stage_done"):
            return end.best_weights
        # the previous stage's banks went with its datasets; compile before this stage's exist
        gc.collect()
        self._compile_steps(needed)
        train_ds, steps, val_ds, val_steps = self._datasets(k, st, needed)
        with cluster_failures(self._strategy):  # a lost worker of a cluster: one line, resume from the checkpoint
            model.fit(train_ds, epochs=cfg.epochs, initial_epoch=st["epoch"], steps_per_epoch=steps,
                      validation_data=val_ds, validation_steps=val_steps, callbacks=[end, *self._callbacks],
                      verbose=self._verbose, shuffle=False)  # (batches come from the seeded pipeline)
        return end.best_weights

    def _count_epoch(self) -> None:
        self._completed_epochs += 1

    def final_metrics(self, reports) -> tuple[dict, dict, dict]:
        """``(metrics, tables, tables_all)`` of the final model (independent protocol; tables also under RUN_DIR/eval/).

        ``metrics``: ``val``/``test`` (mAP@k, k = ``train.eval_k``), ``val_all``/``test_all`` (mAP@all; None
        without a validation split), and for instance-paired sets ``recall``: ``{split: {query: {retrieval:
        {"1", "5", "10", "median_rank"}}}}``. A public seam: a subclass or test may wrap it to see when training ends.
        """
        from cvs_tf.evaluation.metrics import NonFiniteError
        from cvs_tf.evaluation.table import (
            cross_modal_recall,
            cross_modal_table,
            table_record,
            write_table,
        )

        k = self.config.train.eval_k
        fs, model = self._fs, self._model
        splits = (["val"] if self._has_val else []) + (["test"] if self._test_split else [])
        out = {"protocol": "independent", "k": k, "data_label": fs.data_label,
               "dataset": fs.name, "stages": reports, "splits": splits}
        tables, tables_all = {}, {}
        for split in ("val", "test"):
            if split not in splits:
                out[split] = out[f"{split}_all"] = None
                continue
            for kk, key, into in ((k, split, tables), (None, f"{split}_all", tables_all)):
                try:
                    df = cross_modal_table(model, split=split, k=kk, dataset=fs, modalities=model.modalities)
                except NonFiniteError as exc:
                    raise diverged_at_evaluation(model, self.run_dir, split, exc) from None
                write_table(df, self.run_dir / "eval" / f"{split}-independent-k{'all' if kk is None else kk}")
                into[split] = df
                out[key] = table_record(df)
            if fs.paired:
                out.setdefault("recall", {})[split] = cross_modal_recall(model, split, dataset=fs,
                                                                         modalities=model.modalities)
        return out, tables, tables_all
