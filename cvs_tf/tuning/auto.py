"""``--preset auto``: a budgeted search over the recipe families for one feature set, scored on validation or by CV only.

The candidates, in order, until the budget is spent (no candidate starts when the time used plus
the mean candidate time so far would pass it; the first always runs):

1. every shipped preset (``cvs_tf/presets/*.json``);
2. the ``best`` preset with each other registered loss kind of ``cvs_tf.tuning.space.DEFAULT_LOSS_KINDS``;
3. Optuna's seeded TPE over small grids (:func:`auto_space`): loss kind, dim, dropout, weight decay
   and standardize, on the ``best`` preset.

Recipe flags given with ``--preset auto`` are fixed in every candidate. A candidate is one tuning
trial (:func:`cvs_tf.tuning.trial.run_trial`: train/validation only, or the K folds of ``train.select
cvK``); the highest score wins (ties: the earlier one). The strongest baseline's validation score
(:func:`cvs_tf.evaluation.baselines.baseline_validation_scores`) is reported beside it.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cvs_tf.config import ConfigError, RunConfig, select_folds
from cvs_tf.presets import preset_names, preset_values
from cvs_tf.tuning.space import (
    LOSS_KIND_FIELD,
    Param,
    SearchSpace,
    describe,
    resolve_loss_kinds,
)
from cvs_tf.tuning.trial import COMPLETE, new_record, run_trial

__all__ = ["DEFAULT_BUDGET_MINUTES", "auto_search", "auto_space", "run_auto"]

DEFAULT_BUDGET_MINUTES = 10.0
BASE_PRESET = "best"  # the preset the loss-kind and TPE candidates vary
MAX_REPEATS = 32  # grid points proposed again before the search gives up


def auto_space(kinds: list[str], fixed: dict) -> SearchSpace:
    """The small grids of the TPE phase, without the fields fixed by flags."""
    params = (
        Param("loss_kind", LOSS_KIND_FIELD, "choice", choices=tuple(kinds)),
        Param("dim", "model.dim", "choice", choices=(64, 128, 256, 512)),
        Param("dropout", "model.dropout", "choice", choices=(0.0, 0.1, 0.3)),
        Param("weight_decay", "train.weight_decay", "choice", choices=(0.0, 1e-4, 1e-3)),
        Param("standardize", "model.standardize", "choice", choices=(False, True)),
    )
    return SearchSpace(tuple(p for p in params if p.field not in fixed)).check()


def _preset_fields(name: str) -> dict:
    return {f"{section}.{k}": v for section, fields in preset_values(name).items() for k, v in fields.items()}


def _fixed_candidates(fixed: dict) -> list[tuple[str, dict]]:
    """``(label, {field: value})`` of phases 1 and 2 (duplicates dropped)."""
    out, seen = [], []
    for name in preset_names():
        out.append((f"preset {name}", {**_preset_fields(name), **fixed}))
    base = _preset_fields(BASE_PRESET)
    if LOSS_KIND_FIELD not in fixed:
        for kind in resolve_loss_kinds(None):
            out.append((f"preset {BASE_PRESET}, loss {kind}", {**base, LOSS_KIND_FIELD: kind, **fixed}))
    unique = []
    for label, values in out:
        if values not in seen:
            seen.append(values)
            unique.append((label, values))
    return unique


def _clock(s: float) -> str:
    return f"{int(s // 60)}m{int(s % 60):02d}s"


def _baseline(fs, modalities: list[str], k: int, seed: int, log) -> dict:
    from cvs_tf.evaluation.baselines import baseline_validation_scores, strongest_baseline

    if any(fs.count(m, "val") == 0 for m in modalities):
        log("auto: no baseline scores (the set has no validation split)")
        return {"scores": {}, "strongest": None, "score": None}
    scores = baseline_validation_scores(fs, modalities, k=k, seed=seed)
    name, score = strongest_baseline(scores)
    log(f"auto: baselines on validation (mAP@{k}): " + ", ".join(f"{n} {v:.4f}" for n, v in scores.items())
        + f"; strongest: {name}")
    return {"scores": scores, "strongest": name, "score": score}


def auto_search(base: RunConfig, fs, *, fixed: dict | None = None, budget_minutes: float | None = None,
                work_dir: str | Path | None = None, log: Callable[[str], None] | None = None, verbose=0) -> dict:
    """The search's record: candidates with their scores, the chosen one (its ``config`` and ``selection``),
    the budget and the strongest baseline. ``base`` holds what no candidate sets (dataset, space, seed, select);
    ``fixed`` the ``{field: value}`` every candidate keeps. Candidate runs go to ``work_dir`` (kept) or a
    temporary directory (removed). The test split is never read."""
    from cvs_tf.training.selection import check_folds, used_modalities
    from cvs_tf.tuning.report import best_trial, objective
    from cvs_tf.tuning.space import apply_values

    log = log or (lambda m: print(m, flush=True))
    fixed = dict(fixed or {})
    budget_minutes = DEFAULT_BUDGET_MINUTES if budget_minutes is None else float(budget_minutes)
    budget_s, t0 = 60.0 * budget_minutes, time.monotonic()
    k, seed = base.train.eval_k, base.train.seed
    apply_values(base, fixed)  # (a bad fixed value fails here, before anything runs)
    check_folds(base, fs)
    mods = used_modalities(base, fs)
    empty = [m for m in mods if fs.count(m, "val") == 0]
    if empty and select_folds(base.train.select) is None:
        raise ConfigError(f"--preset auto scores candidates on the validation split, and {fs.name} has none for "
                          f"{', '.join(empty)}: use --select cvK (cross-validation over train)")
    log(f"auto: {fs.name} ({fs.data_label}), budget {budget_minutes:g} min; score: {objective(base.train.select, k)}")
    baseline = _baseline(fs, mods, k, seed, log)
    root = Path(tempfile.mkdtemp(prefix="cvs_tf-auto-")) if work_dir is None else Path(work_dir)
    try:
        records, stopped = _search(base, fs, fixed, root, t0, budget_s, log, verbose)
    finally:
        if work_dir is None:
            shutil.rmtree(root, ignore_errors=True)
    if stopped:
        log(f"auto: stopped after {len(records)} candidate(s) ({stopped})")
    best = best_trial(records)
    return {
        "preset": "auto", "budget_minutes": budget_minutes, "wall_s": round(time.monotonic() - t0, 3),
        "select": base.train.select, "objective": objective(base.train.select, k), "k": k, "fixed": fixed,
        "stopped": stopped, "baseline": baseline,
        "candidates": [{"number": r["number"], "label": r["label"], "state": r["state"], "score": r["val_map"],
                        "epochs": r["epochs"], "wall_s": r["wall_s"], "error": r["error"]} for r in records],
        "chosen": None if best is None else {
            "number": best["number"], "label": best["label"], "score": best["val_map"], "config": best["config"],
            "selection": best.get("selection"),
            "reason": f"the highest {'CV' if select_folds(base.train.select) else 'validation'} score of "
                      f"{len(records)} candidate(s)"},
    }


def _search(base: RunConfig, fs, fixed: dict, root: Path, t0: float, budget_s: float, log, verbose):
    """``(records, why it stopped)``: candidates run one after another until the budget or the grids run out."""
    records, tried, why = [], [], []
    for label, values, tell in _candidates(base, fixed, tried, records, why):
        elapsed = time.monotonic() - t0
        per = sum(r["wall_s"] for r in records) / len(records) if records else 0.0
        if records and elapsed + per > budget_s:
            return records, f"budget: {_clock(elapsed)} used, a candidate takes ~{_clock(per)}, budget {_clock(budget_s)}"
        n = len(records)
        rec = run_trial(root, new_record(n, n, {"candidate": label}, base.train.eval_k), values, base=base,
                        featureset=fs, verbose=verbose)
        rec["label"] = label
        records.append(rec)
        tried.append(values)
        if tell is not None:
            tell(rec)
        log(_progress(rec, records, time.monotonic() - t0, budget_s))
    return records, why[0] if why else None


def _candidates(base: RunConfig, fixed: dict, tried: list[dict], records: list[dict], why: list[str]):
    """``(label, values, tell)`` of the next candidate: the fixed ones, then TPE draws on the grids (``tell(record)``
    reports a draw's result). A grid point already tried is told its score again and skipped."""
    import optuna

    from cvs_tf.tuning.study import make_sampler

    for label, values in _fixed_candidates(fixed):
        yield label, values, None
    space = auto_space(resolve_loss_kinds(None), fixed)
    if not space.params:
        why.append("no grid left to search (every field of it is fixed)")
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=make_sampler(base.train.seed, 0))
    repeats = 0
    while repeats <= MAX_REPEATS:
        trial = study.ask()
        sampled = space.sample(trial, base)
        values = {**_preset_fields(BASE_PRESET), **sampled, **fixed}
        if values in tried:
            _tell(study, trial, records[tried.index(values)])
            repeats += 1
            continue
        yield f"search: {describe(sampled)}", values, (lambda rec, t=trial: _tell(study, t, rec))
    why.append("the search keeps proposing candidates already tried")


def _tell(study, trial, rec: dict) -> None:
    from optuna.trial import TrialState

    if rec["state"] == COMPLETE:
        study.tell(trial, rec["val_map"])
    else:
        study.tell(trial, state=TrialState.FAIL)


def _progress(rec: dict, records: list[dict], elapsed: float, budget_s: float) -> str:
    head = f"auto {rec['number'] + 1} [{_clock(elapsed)}/{_clock(budget_s)}]: {rec['label']}"
    if rec["state"] != COMPLETE:
        return f"{head} -> failed: {rec['error']}"
    from cvs_tf.tuning.report import best_trial

    best = best_trial(records)
    return (f"{head} -> score {rec['val_map']:.4f} (best {best['val_map']:.4f}, #{best['number'] + 1}); "
            f"{sum(rec['epochs'] or []) or '-'} epoch(s), {rec['wall_s']:.1f}s")


def run_auto(base: RunConfig, out, *, fixed: dict | None = None, budget_minutes: float | None = None,
             featureset=None, verbose="auto", callbacks=None, log=None):
    """``--preset auto``: search the recipes for ``base``'s dataset (:func:`auto_search`,
    validation or ``train.select cvK`` only), print the chosen recipe's score beside the strongest baseline's,
    then train the chosen recipe into ``out`` (its config.json records the search as ``resolved.selection.auto``).
    Returns the final run's TrainResult."""
    from cvs_tf.data.registry import dataset_path
    from cvs_tf.data.store import load_feature_set
    from cvs_tf.training.run_setup import refuse_used_dir
    from cvs_tf.training.selection import train_selected

    log = log or (lambda m: print(m, flush=True))
    out = Path(out)
    if out.is_dir():
        refuse_used_dir(out)  # (before the search, not after)
    fs = featureset if featureset is not None else load_feature_set(dataset_path(base.train.dataset))
    record = auto_search(base, fs, fixed=fixed, budget_minutes=budget_minutes, log=log)
    chosen = record["chosen"]
    if chosen is None:
        raise ValueError(f"--preset auto: no candidate trained on {fs.name} "
                         f"({'; '.join(c['error'] or '' for c in record['candidates'])[:200]})")
    b = record["baseline"]
    margin = "" if b["score"] is None else f" (margin {chosen['score'] - b['score']:+.4f})"
    log(f"auto: chosen #{chosen['number'] + 1} {chosen['label']}: score {chosen['score']:.4f}; strongest baseline "
        + (f"{b['strongest']}: {b['score']:.4f}{margin}" if b["strongest"] else "-"))
    cfg = RunConfig.from_dict(chosen["config"])
    summary = {k: v for k, v in record.items() if k != "chosen"}
    summary["chosen"] = {k: v for k, v in chosen.items() if k != "selection"}
    return train_selected(cfg, out, featureset=fs, selection=chosen["selection"], verbose=verbose,
                          callbacks=callbacks, log=log, extra={"auto": summary})
