"""Extending a finished M-CVS/RVS run with one more modality: a new stage trained on another feature set (docs/extending.md).

The new stage trains only the new modality's branch and its attention blocks to the known
modalities the new feature set holds (the partners the space links it to: every known one for
M-CVS, the reference for RVS); everything trained before stays frozen and bit-identical. Known
modalities the new set lacks keep their weights and get no block to the new modality
(``CrossModalModel(partners=...)`` records which partners the stage links). The source run is
only read; the extended run is a new run directory whose ``config.json`` says where it came from.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from cvs_tf.config import RunConfig, TrainConfig, fields_in
from cvs_tf.data.registry import dataset_path
from cvs_tf.data.store import FeatureSet, load_feature_set
from cvs_tf.training.run_dir import RunDirError, locate_dataset, read_run_config, stage_dirs
from cvs_tf.training.trainer import Trainer

__all__ = ["ExtendTrainer", "ExtensionError", "Source", "extend_model", "open_source", "plan_extension"]

#: TrainConfig fields an extension may set (the rest of the recipe is the source run's): config.py's "extend" group.
TRAIN_OVERRIDES = fields_in("extend")["train"]
#: Largest |difference| allowed between the source run's tables and the extended model's on the source dataset.
TABLE_TOLERANCE = 1e-6


class ExtensionError(ValueError):
    """A run or feature set that cannot be extended as asked (one line, nothing written)."""


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class Source:
    """A finished multi-stage run, read back: directory, config, last-stage model, dataset and records."""

    run_dir: Path
    config: RunConfig
    resolved: dict
    model: object
    fs: FeatureSet
    metrics: dict
    records: dict  # history.json and stages.json of the run
    model_file: Path

    def origin(self) -> dict:
        """What an extended run records about its source (``config.json`` ``resolved.extended_from``)."""
        root = self.run_dir.resolve()
        overall = {k: (self.metrics.get(k) or {}).get("overall_mean") for k in ("val", "test", "val_all", "test_all")}
        return {"run_dir": str(root), "config_sha256": file_sha256(root / "config.json"),
                "metrics_sha256": file_sha256(root / "metrics.json"), "metrics": overall,
                "model": str(self.model_file.relative_to(self.run_dir)), "model_sha256": file_sha256(self.model_file),
                "stages": self.model.stages, "dataset_name": self.fs.name,
                "dataset_manifest_sha256": self.fs.manifest_sha256}


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ExtensionError(f"{path.parent}: not a finished run (no {path.name}: {what})") from None
    except (OSError, ValueError) as exc:
        raise ExtensionError(f"{path}: unreadable ({' '.join(str(exc).split())[:160]})") from None


def open_source(run_dir) -> Source:
    """Read a finished M-CVS/RVS run (its last stage, its dataset found as ``evaluate`` does); writes nothing."""
    from cvs_tf.loading import load_model
    from cvs_tf.spaces import get_space, multi_stage_names

    root = Path(run_dir)
    if not root.is_dir():
        raise ExtensionError(f"{root}: no such run directory")
    cfg, resolved = read_run_config(root)
    space = get_space(cfg.model.space)
    if not space.multi_stage:
        raise ExtensionError(f"{root}: a {space.name} run trains every modality in one stage and takes no further "
                             f"stage; only a multi-stage space can be extended (train --space "
                             f"{' or '.join(multi_stage_names())})")
    metrics = _read_json(root / "metrics.json", "its training did not complete")
    planned, done = len(resolved.get("stages") or []), stage_dirs(root)  # (an extension saves its new stage only)
    if not done or int(done[-1].name.split("-", 1)[0]) != planned or not isinstance(metrics, dict):
        raise ExtensionError(f"{root}: not a finished run (its last stage {planned} has no saved model)")
    model = load_model(done[-1])
    try:
        fs, _ = locate_dataset(cfg, resolved)
    except ValueError as exc:
        raise RunDirError(f"dataset of run {root}: {exc}") from None
    records = {name: json.loads(p.read_text()) if p.is_file() else None
               for name, p in (("history", root / "history.json"), ("stages", root / "stages.json"))}
    return Source(root, cfg, resolved, model, fs, metrics, records, done[-1] / "model.keras")


def stage_links(model, modality: str) -> list[str]:
    """The known modalities the model's space links a new stage's ``modality`` to (its plan with the stage added)."""
    plan = model.make_plan([*model.stages, [modality]])
    return [x for pair in plan[-1]["pairs"] for x in pair if x != modality]


def plan_extension(source: Source, fs: FeatureSet, modality: str) -> dict:
    """``{"modality", "partners", "absent"}`` of adding ``modality`` from ``fs`` to ``source``; ``ExtensionError`` otherwise.

    ``partners``: the known modalities the new stage links to (those of :func:`stage_links` that
    ``fs`` holds); ``absent``: the known modalities ``fs`` lacks (no block to the new modality).
    """
    model, name = source.model, fs.name
    if modality in model.all_modalities:
        raise ExtensionError(f"modality {modality!r} is already in run {source.run_dir} "
                             f"(stages {model.stages}); extend with a new one")
    if modality not in fs.modalities:
        raise ExtensionError(f"dataset {name} has no modality {modality!r} (has {', '.join(fs.modalities)})")
    if list(fs.classes) != list(source.fs.classes):
        diff = next((i for i, (a, b) in enumerate(zip(fs.classes, source.fs.classes)) if a != b), None)
        where = (f"{len(fs.classes)} classes vs {len(source.fs.classes)}" if diff is None
                 else f"class {diff} is {fs.classes[diff]!r} vs {source.fs.classes[diff]!r}")
        raise ExtensionError(f"dataset {name}'s classes differ from those of the run's dataset {source.fs.name} "
                             f"({where}); the classifier needs the same classes in the same order")
    if fs.label_kind != source.fs.label_kind:
        raise ExtensionError(f"dataset {name} has {fs.label_kind}-label items, the run's dataset "
                             f"{source.fs.name} {source.fs.label_kind}-label ones")
    known = [m for m in model.all_modalities if m in fs.modalities]
    links = stage_links(model, modality)
    partners = [m for m in links if m in fs.modalities]
    if not partners:
        ref = f"the reference {model.reference}" if model.reference in links else ", ".join(links)
        has = f"it has only {', '.join(known)} of them" if known else f"it has none of {', '.join(model.all_modalities)}"
        raise ExtensionError(f"dataset {name} lacks what a new stage of this run aligns {modality!r} to "
                             f"({ref}): {has}")
    bad = [m for m in known if fs.dim(m) != model.modality_dims[m]]
    if bad:
        m = bad[0]
        raise ExtensionError(f"dataset {name}'s {m} features have dim {fs.dim(m)}, the run's {m} branch takes "
                             f"{model.modality_dims[m]}")
    absent = [m for m in model.all_modalities if m not in fs.modalities]
    return {"modality": modality, "partners": partners, "absent": absent}


def extend_model(model, modality: str, dim: int, partners: list[str], policy=None):
    """A copy of ``model`` with a new last stage adding ``modality`` (input ``dim``) linked to ``partners``.

    Every earlier component gets the source's weights (also the standardisation statistics); the
    new model is at the new stage (everything earlier frozen). ``policy``: the branches' precision
    policy (default: that of ``model``'s branches); the source run's, so the known modalities
    embed bit for bit as in that run.
    """
    cfg = model.get_config()
    cfg.update(modality_dims={**model.modality_dims, modality: int(dim)}, stages=[*model.stages, [modality]],
               partners={**model.partners, modality: list(partners)}, current_stage=model.num_stages)
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy or model.branches[model.all_modalities[0]].dtype_policy)
    try:
        new = type(model).from_config(cfg)
    finally:
        keras.mixed_precision.set_global_policy(before)
    for k in range(model.num_stages):
        for old, layer in zip(model.stage_components(k), new.stage_components(k), strict=True):
            if old.name != layer.name:
                raise AssertionError(f"stage {k + 1} components differ: {old.name} vs {layer.name}")
            layer.set_weights(old.get_weights())
    return new


def extended_config(source: Source, dataset: str, modality: str, train: dict | None = None) -> RunConfig:
    """The extended run's config: the source's recipe, its stages plus ``[modality]``, ``dataset``, ``train`` overrides."""
    cfg = RunConfig.from_dict(source.config.to_dict())
    cfg.model.stages = [*source.model.stages, [modality]]
    cfg.model.modalities = [*source.model.all_modalities, modality]
    cfg.train.dataset = dataset
    cfg.train.select = "val"  # the source's cross-validated epochs were its own stages'; the new stage selects on D2's val
    known = {f.name for f in fields(TrainConfig)}
    for key, value in (train or {}).items():
        if key not in TRAIN_OVERRIDES:
            what = "not a TrainConfig field" if key not in known else "the source run's setting is kept"
            raise ExtensionError(f"an extension cannot set train.{key} ({what}; it may set {', '.join(TRAIN_OVERRIDES)})")
        setattr(cfg.train, key, value)
    return cfg.validate()


def stage_view(config: RunConfig, modality: str, partners: list[str]) -> RunConfig:
    """The new stage seen on its own dataset, for the Trainer's up-front checks (validation items, batch memory).

    A plan over ``modality`` and its ``partners`` only, whose largest stage trains as many pairs
    over the same modalities as the new stage (``[[M, p1], [p2], ...]``).
    """
    view = RunConfig.from_dict(config.to_dict())
    view.model.stages = [[modality, partners[0]], *[[p] for p in partners[1:]]]
    view.model.modalities = None
    return view.validate()


def split_tables(model, fs: FeatureSet, splits, k: int, eval_dir: Path | None = None, modalities=None):
    """``({split: record, f"{split}_all": record}, {split: table@k}, {split: table@all})`` on ``fs``
    over ``modalities`` (default: the model's that ``fs`` holds); written under ``eval_dir`` when given."""
    from cvs_tf.evaluation.table import cross_modal_table, table_record, write_table

    records, tables, tables_all = {}, {}, {}
    for split in splits:
        mods = modalities or [m for m in model.modalities if m in fs.modalities and fs.count(m, split)]
        if len(mods) < 2:  # (the new stage's modalities without items in this split)
            continue
        for kk, key, into in ((k, split, tables), (None, f"{split}_all", tables_all)):
            df = cross_modal_table(model, split=split, k=kk, dataset=fs, modalities=mods)
            if eval_dir is not None:
                write_table(df, eval_dir / f"{split}-independent-k{'all' if kk is None else kk}")
            into[split], records[key] = df, table_record(df)
    return records, tables, tables_all


def max_table_difference(a: dict, b: dict) -> float:
    """Largest |difference| between the cells of two table records (inf when their modalities differ)."""
    if a.get("modalities") != b.get("modalities"):
        return float("inf")
    cells = [(a["matrix"][q][r], b["matrix"][q][r]) for q in a["modalities"] for r in a["modalities"] if q != r]
    return max((abs(x - y) if x is not None and y is not None else float(x != y) for x, y in cells), default=0.0)


class ExtendTrainer(Trainer):
    """Trains one new stage onto a finished M-CVS/RVS run, into a new run directory (the source is only read).

    ``source``: the finished run's directory; ``modality``: the modality to add; ``dataset`` (a
    name or directory) or ``featureset``: the feature set it comes from, holding it and a known
    modality the space links it to; ``train``: :data:`TRAIN_OVERRIDES` values. Every check runs
    here or in :meth:`run` before ``run_dir`` is created. ``full_config`` is the extended run's
    config (``config.json``); ``config`` is the new stage seen on its feature set
    (:func:`stage_view`), what the Trainer's checks read. The run keeps no resumable checkpoint:
    an interrupted extension restarts with the same command (its directory holds no finished stage).
    """

    def __init__(self, source, modality: str, run_dir, *, dataset: str | None = None,
                 featureset: FeatureSet | None = None, train: dict | None = None, **kwargs):
        self.source = source if isinstance(source, Source) else open_source(source)
        out = Path(run_dir).resolve()
        if out == self.source.run_dir.resolve() or self.source.run_dir.resolve() in out.parents:
            raise ExtensionError(f"{run_dir}: the extended run must go outside the source run {self.source.run_dir} "
                                 "(which is never written)")
        if featureset is None:
            if dataset is None:
                raise ExtensionError("an extension needs the feature set of the new modality (dataset=)")
            featureset = load_feature_set(dataset_path(dataset))
        self.extension = plan_extension(self.source, featureset, modality)
        self.full_config = extended_config(self.source, dataset or str(featureset.path), modality, train)
        super().__init__(stage_view(self.full_config, modality, self.extension["partners"]), run_dir,
                         featureset=featureset, checkpoint=False, **kwargs)

    def _resolved_config(self) -> dict:
        resolved = super()._resolved_config()["resolved"]
        ext = {**self.extension, "dataset_manifest_sha256": self._fs.manifest_sha256}
        resolved.update(stages=self.full_config.model.stages, extended_from=self.source.origin(), extension=ext)
        return {**self.full_config.to_dict(), "resolved": resolved}

    def _build(self):
        keras.utils.set_random_seed(self.config.train.seed)
        m = self.extension["modality"]
        # the source run's precision (a reloaded model's branches are float32 whatever the run trained in)
        policy = keras.mixed_precision.global_policy()
        if self.config.train.mixed_precision:
            policy = "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
        with getattr(self, "_strategy", tf.distribute.get_strategy()).scope():  # (the Trainer's tf.distribute strategy)
            self._model = extend_model(self.source.model, m, self._fs.dim(m), self.extension["partners"], policy)
        self._model.fit_standardization(self._fs, modalities=[m])  # the known branches keep their statistics

    def _run_stage(self, k: int, st: dict, records: dict) -> None:
        if k >= self.source.model.num_stages:
            return super()._run_stage(k, st, records)
        # an earlier stage: trained in the source run, whose records it keeps
        history = (self.source.records["history"] or {}).get("stages") or []
        records["history"]["stages"] += [h for h in history if h.get("stage") == k + 1]
        records["reports"] += [r for r in self.source.records["stages"] or [] if r.get("stage") == k + 1]

    def final_metrics(self, reports) -> tuple[dict, dict, dict]:
        """The new feature set's tables over the model's modalities it holds (as ``evaluate`` gives), and
        ``metrics["extension"]``: the known modalities' tables on the source dataset against the source run's."""
        k, fs = self.config.train.eval_k, self._fs
        splits = (["val"] if self._has_val else []) + (["test"] if self._test_split else [])
        out = {"protocol": "independent", "k": k, "data_label": fs.data_label, "dataset": fs.name,
               "stages": reports, "splits": splits, **{s: None for s in ("val", "test", "val_all", "test_all")}}
        records, tables, tables_all = split_tables(self._model, fs, splits, k, self.run_dir / "eval")
        out.update(records)
        if fs.paired:  # as the Trainer's metrics.json: R@K of each query's own partner
            from cvs_tf.evaluation.table import cross_modal_recall

            out["recall"] = {s: cross_modal_recall(self._model, s, dataset=fs, modalities=records[s]["modalities"])
                             for s in splits if records.get(s)}
        out["extension"] = self.check_source_tables()
        return out, tables, tables_all

    def check_source_tables(self) -> dict:
        """The source run's tables (val/test, mAP@k and @all) again, from the extended model on the source dataset."""
        src, checked, diff = self.source, [], 0.0
        for split in ("val", "test"):
            if not src.metrics.get(split):
                continue
            got = split_tables(self._model, src.fs, [split], src.config.train.eval_k,
                               modalities=src.metrics[split]["modalities"])[0]
            for key in (split, f"{split}_all"):
                diff = max(diff, max_table_difference(got[key], src.metrics.get(key) or {}))
                checked.append(key)
        unchanged = bool(np.isfinite(diff) and diff <= TABLE_TOLERANCE)
        self._log(f"the source run's tables on {src.fs.name} ({', '.join(checked)}): "
                  + ("unchanged" if unchanged else "CHANGED") + f" (max |difference| {diff:.2g})")
        return {"source_dataset": src.fs.name, "tables": checked, "max_abs_difference": diff, "unchanged": unchanged}
