"""Model selection by stratified K-fold cross-validation over train+val (``train.select cvK``), then one run on all of it.

``cross_validate`` pools each used modality's train and val rows, deals them into K folds
stratified by class (scikit-learn's ``StratifiedKFold``; for an instance-paired set one
assignment for every modality, so row i of every modality lands in the same fold), and trains K
runs on K-1 parts each, validated on the held-out part. A fold run trains every stage for
``train.epochs`` epochs without early stopping and records its per-epoch validation values; the
epoch count of each stage is the one with the best mean over folds (val mAP@k, or val loss under
``early_stopping val_loss``). ``train_selected`` then trains the final model on all of
train+val for those epochs (the last epoch is kept) and evaluates it on test. No fold reads test.

The choice (fold curves, fold scores, the mean score, the epochs) is ``selection.json`` in the run
directory and ``resolved.selection`` in its ``config.json``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cvs_tf.config import ConfigError, RunConfig, select_folds
from cvs_tf.data.store import FeatureSet

__all__ = ["SELECTION_FILE", "DerivedSet", "check_folds", "cross_validate", "fold_ids", "fold_set", "merged_set",
           "train_selected", "used_modalities"]

SELECTION_FILE = "selection.json"
FORMAT = "cvs_tf.selection"


class DerivedSet(FeatureSet):
    """A feature set re-split in memory from a stored one; it reports the source's manifest sha256 and path,
    so a run trained on it is found, evaluated and resumed against the stored set."""

    def __init__(self, source: FeatureSet, manifest: dict, arrays: dict):
        super().__init__(source.path, manifest, arrays)
        self.source_sha256 = source.manifest_sha256

    @property
    def manifest_sha256(self) -> str:
        return self.source_sha256


def used_modalities(cfg: RunConfig, fs: FeatureSet) -> list[str]:
    """The modalities the configured space trains on this set, in stage order (its plan's, split checks aside)."""
    from cvs_tf.plan import RunPlan

    return list(RunPlan.build(cfg, fs, check_splits=False).modalities)


def _strata(y: np.ndarray) -> np.ndarray:
    """The class of each row (multi-hot: its first active class, -1 for none), as the validation carve-out uses."""
    y = np.asarray(y)
    return y if y.ndim == 1 else np.where(y.any(1), y.argmax(1), -1)


def _pooled(fs: FeatureSet, m: str) -> tuple[np.ndarray, np.ndarray]:
    return (np.concatenate([np.asarray(fs.x(m, "train")), np.asarray(fs.x(m, "val"))]),
            np.concatenate([np.asarray(fs.y(m, "train")), np.asarray(fs.y(m, "val"))]))


def _pooled_labels(fs: FeatureSet, m: str) -> np.ndarray:
    return np.concatenate([np.asarray(fs.y(m, "train")), np.asarray(fs.y(m, "val"))])


def check_folds(cfg: RunConfig, fs: FeatureSet) -> int | None:
    """K of ``train.select`` (None for ``val``); ``ConfigError`` when a class of a used modality has fewer
    train+val items than folds."""
    k = select_folds(cfg.train.select)
    if k is None:
        return None
    for m in used_modalities(cfg, fs):
        classes, counts = np.unique(_strata(_pooled_labels(fs, m)), return_counts=True)
        if len(classes) and counts.min() < k:
            c = int(classes[counts.argmin()])
            name = fs.classes[c] if c >= 0 else "(no label)"
            raise ConfigError(f"--select {cfg.train.select}: class {name!r} has {counts.min()} {m} item(s) in "
                              f"train+val of {fs.name}, fewer than the {k} folds (use fewer folds or --select val)")
    return k


def fold_ids(fs: FeatureSet, modalities: list[str], k: int, seed: int) -> dict[str, np.ndarray]:
    """``{modality: fold index of each pooled train+val row}``: stratified by class, one shared assignment
    for an instance-paired set (row i of every modality in the same fold)."""
    from sklearn.model_selection import StratifiedKFold

    def assign(y, s):
        ids = np.empty(len(y), dtype=np.int64)
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=s)
        for i, (_, held) in enumerate(splitter.split(np.zeros(len(y)), _strata(y))):
            ids[held] = i
        return ids

    if fs.paired:
        shared = assign(_pooled_labels(fs, modalities[0]), seed)
        return {m: shared for m in modalities}
    return {m: assign(_pooled_labels(fs, m), seed + 7919 * i) for i, m in enumerate(modalities)}


def _empty(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x[:0], y[:0]


def _derived(fs: FeatureSet, arrays: dict) -> DerivedSet:
    manifest = json.loads(json.dumps(fs.manifest))
    mods = list(dict.fromkeys(m for m, _ in arrays))
    manifest["modalities"] = {m: manifest["modalities"][m] for m in mods}
    for (m, split), (x, _) in arrays.items():
        manifest["modalities"][m]["counts"][split] = int(len(x))
    return DerivedSet(fs, manifest, arrays)


def fold_set(fs: FeatureSet, ids: dict[str, np.ndarray], fold: int) -> DerivedSet:
    """Fold ``fold`` as a set: train = the other folds, val = this one, test = empty (never read)."""
    arrays = {}
    for m, assigned in ids.items():
        x, y = _pooled(fs, m)
        held = assigned == fold
        arrays[(m, "train")], arrays[(m, "val")] = (x[~held], y[~held]), (x[held], y[held])
        arrays[(m, "test")] = _empty(x, y)
    return _derived(fs, arrays)


def merged_set(fs: FeatureSet, modalities: list[str]) -> DerivedSet:
    """The set of the final run: train = train+val, val = empty, test = the stored test split."""
    arrays = {}
    for m in modalities:
        x, y = _pooled(fs, m)
        arrays[(m, "train")], arrays[(m, "val")] = (x, y), _empty(x, y)
        arrays[(m, "test")] = fs.arrays[(m, "test")]
    return _derived(fs, arrays)


def _curves(run_dir: Path, key: str) -> list[list[float]]:
    history = json.loads((run_dir / "history.json").read_text())
    return [[float(e.get(key, float("nan"))) for e in st["epochs"]]
            for st in sorted(history["stages"], key=lambda s: s["stage"])]


def _mean_curve(curves: list[list[float]]) -> np.ndarray:
    n = min(len(c) for c in curves)
    with np.errstate(all="ignore"):
        return np.nanmean(np.asarray([c[:n] for c in curves], dtype=np.float64), axis=0)


def _choose(folds: list[dict], sign: float):
    """``(mean monitor curves, mean val mAP curves, chosen epochs)`` per stage: the best epoch of the mean over folds."""
    stages = len(folds[0]["curves"])
    mean = [_mean_curve([f["curves"][s] for f in folds]) for s in range(stages)]
    mean_map = [_mean_curve([f["val_map"][s] for f in folds]) for s in range(stages)]
    chosen = [int(np.argmax(np.where(np.isfinite(c), sign * c, -np.inf))) + 1 for c in mean]
    return mean, mean_map, chosen


def cross_validate(cfg: RunConfig, fs: FeatureSet, *, work_dir: str | Path | None = None, verbose=0,
                   log: Callable[[str], None] | None = None, run_log: Callable[[str], None] | None = None) -> dict:
    """The K-fold selection record of ``cfg`` on ``fs`` (K from ``train.select``); see the module docstring.

    Fold runs go to ``work_dir/fold-N`` (kept) or a temporary directory (removed); ``log`` gets one
    line per fold and the choice, ``run_log`` every fold run's Trainer lines.
    """
    from cvs_tf.training.callbacks import monitor
    from cvs_tf.training.trainer import Trainer

    log = log or (lambda m: print(m, flush=True))
    k = check_folds(cfg, fs)
    if k is None:
        raise ConfigError(f"train.select {cfg.train.select!r} is not a cross-validation mode (cvK)")
    mods = used_modalities(cfg, fs)
    ids = fold_ids(fs, mods, k, cfg.train.seed)
    fold_cfg = RunConfig.from_dict(cfg.to_dict())
    fold_cfg.train.select, fold_cfg.train.early_stopping = "val", "none"
    key, sign = monitor(cfg.train.early_stopping)
    temp = work_dir is None
    root = Path(tempfile.mkdtemp(prefix="cvs_tf-cv-")) if temp else Path(work_dir)
    folds, t0 = [], time.monotonic()
    try:
        for i in range(k):
            t1 = time.monotonic()
            part = fold_set(fs, ids, i)
            run_dir = root / f"fold-{i + 1}"
            prefix = f"  [fold {i + 1}/{k}] "
            Trainer(fold_cfg, run_dir, featureset=part, test_split=False, checkpoint=False, verbose=verbose,
                    log=(lambda m, p=prefix: run_log(p + m.lstrip())) if run_log else (lambda m: None)).run()
            curves, maps = _curves(run_dir, key), _curves(run_dir, "val_map")
            best = int(np.nanargmax(maps[-1])) if np.isfinite(maps[-1]).any() else len(maps[-1]) - 1
            folds.append({"fold": i + 1, "train": {m: part.count(m, "train") for m in mods},
                          "val": {m: part.count(m, "val") for m in mods}, "curves": curves, "val_map": maps,
                          "wall_s": round(time.monotonic() - t1, 3)})
            log(f"cv fold {i + 1}/{k}: train {'/'.join(str(part.count(m, 'train')) for m in mods)}, "
                f"val {'/'.join(str(part.count(m, 'val')) for m in mods)} items ({', '.join(mods)}); best val "
                f"mAP@{cfg.train.eval_k} {maps[-1][best]:.4f} at epoch {best + 1}; {time.monotonic() - t1:.1f}s")
    finally:
        if temp:
            shutil.rmtree(root, ignore_errors=True)
    mean, mean_map, chosen = _choose(folds, sign)
    e = chosen[-1] - 1
    fold_scores = [f["val_map"][-1][e] for f in folds]
    record = {
        "format": FORMAT, "format_version": 1, "select": cfg.train.select, "folds": k, "seed": cfg.train.seed,
        "stratified_by": "class", "paired": fs.paired, "pool": "train+val", "modalities": mods,
        "monitor": key, "k": cfg.train.eval_k, "max_epochs": cfg.train.epochs,
        "stage_epochs": chosen, "score": float(mean_map[-1][e]), "fold_scores": [float(v) for v in fold_scores],
        "mean_curves": {"monitor": [c.tolist() for c in mean], "val_map": [c.tolist() for c in mean_map]},
        "fold_runs": folds, "wall_s": round(time.monotonic() - t0, 3),
    }
    log(f"cv{k}: chosen {'+'.join(map(str, chosen))} epoch(s) by the mean {key} over folds; mean val "
        f"mAP@{cfg.train.eval_k} {record['score']:.4f} (folds: {', '.join(f'{v:.4f}' for v in fold_scores)})")
    return record


def final_config(cfg: RunConfig) -> RunConfig:
    """The config of the final run of a CV selection: no early stopping (there is no validation split left)."""
    out = RunConfig.from_dict(cfg.to_dict())
    out.train.early_stopping = "none"
    return out.validate()


def train_selected(cfg: RunConfig, out: str | Path, *, featureset: FeatureSet | None = None, selection=None,
                   resume: bool = False, test_split: bool = True, checkpoint: bool = True, verbose="auto",
                   callbacks=None, log: Callable[[str], None] | None = None, run_log=None, extra: dict | None = None):
    """Train ``cfg`` into ``out`` as ``train.select`` says: ``val`` is one Trainer run; ``cvK`` runs
    :func:`cross_validate` (or takes ``selection``, a record it made for this config) and then the final run on
    train+val. ``extra`` is recorded beside the choice (``resolved.selection`` in config.json). Returns the
    final run's :class:`TrainResult`."""
    from cvs_tf.data.registry import dataset_path
    from cvs_tf.data.store import load_feature_set
    from cvs_tf.training.checkpoint import write_json
    from cvs_tf.training.run_setup import refuse_used_dir
    from cvs_tf.training.trainer import Trainer

    log = log or (lambda m: print(m, flush=True))
    out = Path(out)
    kwargs = dict(test_split=test_split, checkpoint=checkpoint, verbose=verbose, callbacks=callbacks, log=log)
    if select_folds(cfg.train.select) is None:
        record = {"select": cfg.train.select, **(extra or {})} if extra else None
        result = Trainer(cfg, out, featureset=featureset, selection=record, **kwargs).run(resume=resume)
        if record:
            write_json(out / SELECTION_FILE, record)
        return result
    fs = featureset if featureset is not None else load_feature_set(dataset_path(cfg.train.dataset))
    check_folds(cfg, fs)
    if not resume and out.is_dir():
        refuse_used_dir(out)  # (before the folds run, not after)
    if selection is None:
        selection = cross_validate(cfg, fs, verbose=0, log=log, run_log=run_log)
    record = {**selection, **(extra or {})}
    log(f"final run: {'+'.join(map(str, selection['stage_epochs']))} epoch(s) on all of train+val -> {out}")
    result = Trainer(final_config(cfg), out, featureset=merged_set(fs, used_modalities(cfg, fs)), selection=record,
                     **kwargs).run(resume=resume)
    write_json(out / SELECTION_FILE, record)
    return result


def resume_kwargs(cfg: RunConfig, resolved: dict) -> dict:
    """What :func:`train_selected` needs to resume a run: its feature set re-split as the run saw it and its
    selection record (``{}`` for a ``val`` run)."""
    if select_folds(cfg.train.select) is None:
        return {}
    from cvs_tf.training.run_dir import locate_dataset

    sel = resolved.get("selection") or {}
    if "stage_epochs" not in sel:
        raise ConfigError("config.json: a cross-validated run without its selection record (resolved.selection) "
                          "cannot be resumed")
    fs, _ = locate_dataset(cfg, resolved)
    return {"featureset": fs, "selection": sel}

