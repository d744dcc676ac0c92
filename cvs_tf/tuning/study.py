"""The tuning study: a seeded-TPE Optuna study in a file-backed JournalStorage under DIR, resumable, selected on validation.

``tune(settings, DIR)`` checks everything (config, search space, dataset, validation split) before
DIR is created, locks DIR (``DIR/.lock``, as a training run does), runs the trials missing up to
``settings.trials`` one after another, then writes ``best_config.json`` and trains the chosen
configuration once more with the test split (``DIR/best_run``) — the only read of the test split.

Reproducibility: the sampler of the i-th counted trial is a fresh ``TPESampler`` seeded from
``(seed, i)``, and every trial trains with ``train.seed = seed``; the same settings into a new DIR
draw the same configurations (given the same validation results), and a resumed study draws what
the uninterrupted one would have. A trial left RUNNING by a kill (or stopped by Ctrl-C) is marked
failed (``INTERRUPTED``) and its slot is run again; a trial that failed with an error counts.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cvs_tf.config import DEFAULT_SPACE, ConfigError, RunConfig
from cvs_tf.tuning.space import SearchSpace, default_space, describe
from cvs_tf.tuning.trial import (
    COMPLETE,
    TuneError,
    describe_space_params,
    interrupted_record,
    new_record,
    run_trial,
    write_trials_jsonl,
)
from cvs_tf.utils.fields import Fields

__all__ = ["STUDY_FILE", "TuneResult", "TuneSettings", "tune"]

STUDY_FILE = "study.journal"
STUDY_NAME = "cvs_tf-tune"
META_KEY = "cvs_tf"
DEFAULT_TRIALS, DEFAULT_EPOCHS, DEFAULT_SEED = 20, 30, 0
COMPARED = ("space", "seed", "epochs", "base_config", "search_space")  # what --resume may not change


@dataclass
class TuneSettings:
    """What ``python -m cvs_tf.tune`` was given; None = the default (fresh study) or the saved value (resume)."""

    dataset: str | None = None  # name or directory (None: tux12)
    space: str | None = None  # model.space (None: the default space)
    trials: int | None = None  # total trials of the study
    seed: int | None = None
    epochs: int | None = None  # train.epochs of every trial
    base: RunConfig | None = None  # fields not tuned (--config)
    search: SearchSpace | None = None
    select: str | None = None  # train.select of every trial: val (the default) or cvK


@dataclass
class TuneResult:
    """What :func:`tune` returns: the trial records, the chosen one, the final run's metrics and the summary."""

    out: Path
    records: list[dict]
    best: dict
    final_metrics: dict
    summary: dict


def make_sampler(seed: int, slot: int):
    """A fresh TPE sampler for the ``slot``-th counted trial, seeded from ``(seed, slot)``."""
    import numpy as np
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (group=True may warn as experimental)
        sub = int(np.random.SeedSequence([seed, slot]).generate_state(1)[0])
        return optuna.samplers.TPESampler(seed=sub, multivariate=True, group=True, constant_liar=False)


def _fresh_meta(s: TuneSettings, fs) -> dict:
    """The study's settings (saved in the study) from what was given, defaults filled in, everything checked."""
    base = RunConfig.from_dict(s.base.to_dict()) if s.base is not None else RunConfig()
    base.train.dataset = s.dataset if s.dataset is not None else base.train.dataset
    base.model.space = s.space or base.model.space or DEFAULT_SPACE
    base.train.epochs = s.epochs if s.epochs is not None else (base.train.epochs if s.base is not None else DEFAULT_EPOCHS)
    base.train.seed = s.seed if s.seed is not None else (base.train.seed if s.base is not None else DEFAULT_SEED)
    base.train.select = s.select if s.select is not None else base.train.select
    base.validate()
    search = (s.search or default_space()).check()
    return {"format": 1, "dataset": base.train.dataset, "dataset_name": fs.name,
            "dataset_sha256": fs.manifest_sha256, "space": base.model.space, "seed": base.train.seed,
            "epochs": base.train.epochs, "trials": s.trials or DEFAULT_TRIALS, "base_config": base.to_dict(),
            "search_space": search.to_dict()}


def _given_meta(s: TuneSettings, saved: dict) -> dict:
    """What was given on --resume, in the saved settings' terms (None: not given)."""
    given = {"space": s.space, "seed": s.seed, "epochs": s.epochs, "base_config": None,
             "search_space": s.search.check().to_dict() if s.search is not None else None}
    if s.base is not None:
        base = RunConfig.from_dict(s.base.to_dict())
        base.train.dataset, base.model.space = saved["dataset"], saved["space"]
        base.train.epochs, base.train.seed = saved["epochs"], saved["seed"]
        given["base_config"] = base.validate().to_dict()
    return given


def _check_resume(out: Path, s: TuneSettings, saved: dict, fs) -> None:
    if fs.manifest_sha256 != saved["dataset_sha256"]:
        raise TuneError(f"{out}: the study was made for dataset {saved['dataset_name']} (manifest sha256 "
                        f"{saved['dataset_sha256'][:12]}), not {fs.name} ({fs.manifest_sha256[:12]}); "
                        "--resume continues a study with its own settings (use a new --out for another)")
    given = json.loads(json.dumps(_given_meta(s, saved)))  # (the saved settings went through JSON)
    diff = [k for k in COMPARED if given[k] is not None and given[k] != saved[k]]
    saved_select = saved["base_config"]["train"].get("select", "val")
    if s.select is not None and s.select != saved_select and "base_config" not in diff:
        raise TuneError(f"{out}: the study was made with other settings (select {saved_select!r}, given "
                        f"{s.select!r}); --resume continues it with its own (drop --select, or use a new --out)")
    if diff:
        shown = ", ".join(f"{k} {saved[k]!r}, given {given[k]!r}" if k in ("space", "seed", "epochs")
                          else f"another {k.replace('_', ' ')}" for k in diff)
        raise TuneError(f"{out}: the study was made with other settings ({shown}); --resume continues it "
                        "with its own (drop those options, or use a new --out for another study)")


def _load_featureset(dataset, sha=None):
    """The set by name or directory, or (``sha``) the study's set found again; loaded and checked once for all trials."""
    from cvs_tf.data.pipeline import release_feature_set
    from cvs_tf.data.registry import dataset_path, find_dataset
    from cvs_tf.data.store import load_feature_set

    fs = load_feature_set(dataset_path(dataset)) if sha is None else find_dataset(sha, names=[dataset])[0]
    release_feature_set(fs)  # (the checks mapped every array in; each trial's banks copy what it needs)
    return fs


def _check_validation(meta: dict, fs) -> None:
    from cvs_tf.training.selection import check_folds, used_modalities

    base = RunConfig.from_dict(meta["base_config"])
    if check_folds(base, fs) is not None:
        return  # (cross-validation pools train and val: a set without val is fine)
    mods = used_modalities(base, fs)
    empty = [m for m in mods if fs.count(m, "val") == 0]
    if empty:
        raise TuneError(f"dataset {fs.name} has no validation items for {', '.join(empty)}: tuning selects on "
                        "the validation split (convert it with --val-fraction > 0)")


def _storage(out: Path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(out / STUDY_FILE)))


def _open(out: Path, s: TuneSettings, resume: bool, featureset):
    """``(study, meta, fs)`` of a new study (DIR created empty) or of the one in DIR (``resume``)."""
    import optuna

    if not resume:
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise TuneError(f"{out}: not empty (--resume continues the study in it; or use a new --out)")
        if s.dataset is None and s.base is not None:
            s = dataclasses.replace(s, dataset=s.base.train.dataset)
        fs = featureset if featureset is not None else _load_featureset(s.dataset)
        meta = _fresh_meta(s, fs)
        _check_validation(meta, fs)
        return None, meta, fs
    if not (out / STUDY_FILE).is_file():
        raise TuneError(f"{out}: no study to resume (missing {STUDY_FILE})")
    try:
        study = optuna.load_study(study_name=STUDY_NAME, storage=_storage(out))
        saved = study.user_attrs[META_KEY]
    except (KeyError, ValueError, TypeError) as exc:
        raise TuneError(f"{out / STUDY_FILE}: not a cvs_tf tuning study ({' '.join(str(exc).split())[:120]})") from None
    check_meta(out / STUDY_FILE, saved)
    saved = dict(saved)
    if featureset is not None:
        fs = featureset
    elif s.dataset is not None:  # given: must be the study's set (checked below)
        fs = _load_featureset(s.dataset)
    else:  # the study's set found again by its manifest sha256 (as evaluate and train --resume do)
        fs = _load_featureset(saved["dataset"], saved["dataset_sha256"])
    _check_resume(out, s, saved, fs)
    return study, saved, fs


def check_meta(path: Path, saved) -> None:
    """The settings saved in a study have the types and ranges :func:`tune` relies on (TuneError naming the
    file and field); the saved base config and search space are checked as a fresh study's are."""
    f = Fields(path, saved, error=TuneError, prefix=META_KEY)
    for key in ("dataset", "dataset_name", "dataset_sha256", "space"):
        f.get(key, "string")
    f.get("seed", "integer", low=0, high=2**32 - 1)
    f.get("epochs", "integer", low=1)
    f.get("trials", "integer", low=1)
    for key in ("base_config", "search_space"):
        f.get(key, "object")
    try:
        RunConfig.from_dict(saved["base_config"]).validate()
    except ConfigError as exc:
        f.fail("base_config", str(exc))
    try:
        SearchSpace.from_dict(saved["search_space"]).check()
    except ConfigError as exc:
        f.fail("search_space", str(exc))


def _create(out: Path, meta: dict):
    import optuna

    study = optuna.create_study(storage=_storage(out), study_name=STUDY_NAME, direction="maximize",
                                sampler=make_sampler(meta["seed"], 0))
    study.set_user_attr(META_KEY, meta)
    return study


def counted(study) -> list:
    """The trials that count towards the total: finished with a result or an error (not interrupted)."""
    return [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("outcome")]


def mark_interrupted(study, out: Path, k: int, log) -> None:
    """Trials a kill left RUNNING (or a Ctrl-C left without a record): marked failed and recorded INTERRUPTED."""
    from optuna.trial import TrialState

    from cvs_tf.tuning.trial import INTERRUPTED, read_records

    recorded = {r["number"] for r in read_records(out) if r["state"] == INTERRUPTED}
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("outcome") or t.state not in (TrialState.RUNNING, TrialState.FAIL) or t.number in recorded:
            continue
        if t.state == TrialState.RUNNING:
            study.tell(t.number, state=TrialState.FAIL)
        interrupted_record(out, t.number, t.user_attrs.get("slot"), t.user_attrs.get("params", {}), k)
        log(f"trial #{t.number} was interrupted: recorded as INTERRUPTED; its slot runs again")


def run_trials(study, meta: dict, out: Path, fs, log, verbose=0, trial_log=None) -> list[dict]:
    """Run the counted trials missing up to ``meta["trials"]``; one progress line each; returns the records."""
    from optuna.trial import TrialState

    base, search = RunConfig.from_dict(meta["base_config"]), SearchSpace.from_dict(meta["search_space"])
    records = write_trials_jsonl(out)
    while (slot := len(counted(study))) < meta["trials"]:
        study.sampler = make_sampler(meta["seed"], slot)
        trial = study.ask()
        try:
            values = search.sample(trial, base)
            params = describe_space_params(search, values)
            trial.set_user_attr("slot", slot)
            trial.set_user_attr("params", params)
            rec = run_trial(out, new_record(trial.number, slot, params, base.train.eval_k), values, base=base,
                            featureset=fs, verbose=verbose, log=trial_log)
        except BaseException:  # Ctrl-C (or a bug): no outcome, so a resume runs this slot again
            study.tell(trial, state=TrialState.FAIL)
            interrupted_record(out, trial.number, slot, trial.user_attrs.get("params", {}), base.train.eval_k)
            write_trials_jsonl(out)
            raise
        trial.set_user_attr("outcome", rec["state"])
        if rec["state"] == COMPLETE:
            study.tell(trial, rec["val_map"])
        else:
            study.tell(trial, state=TrialState.FAIL)
        records = write_trials_jsonl(out)
        log(progress_line(rec, values, meta["trials"], records))
    return records


def progress_line(rec: dict, values: dict, total: int, records: list[dict]) -> str:
    done = [r for r in records if r["state"] == COMPLETE]
    head = f"trial {rec['slot'] + 1}/{total} (#{rec['number']}): {describe(values)}"
    if rec["state"] != COMPLETE:
        return f"{head} -> failed: {rec['error']}"
    best = max(done, key=lambda r: (r["val_map"], -r["number"]))
    epochs = sum(rec["epochs"] or [])
    score = "val" if rec.get("selection") is None else f"cv{rec['selection']['folds']}"
    return (f"{head} -> {score} mAP@{rec['k']} {rec['val_map']:.4f} (best {best['val_map']:.4f}, #{best['number']}); "
            f"{epochs} epoch(s), {rec['wall_s']:.1f}s")


def tune(settings: TuneSettings, out, *, resume: bool = False, featureset=None,
         log: Callable[[str], None] | None = None, verbose=0, trial_log=None) -> TuneResult:
    """Run (or, ``resume``, continue) the study in ``out``; see the module docstring.

    ``featureset``: a loaded FeatureSet used instead of loading the dataset (on resume its manifest
    sha256 must be the study's); ``log``: the progress sink (one line per trial); ``trial_log``: a
    sink for every trial's Trainer lines (default: only kept in ``trials/NNNN/log.txt``); ``verbose``:
    the Keras ``fit`` verbosity.
    """
    import optuna

    from cvs_tf.training.lock import RunDirLock
    from cvs_tf.tuning.report import finish, objective

    log = log or (lambda m: print(m, flush=True))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = Path(out)
    if settings.trials is not None and settings.trials < 1:
        raise TuneError(f"trials must be >= 1, got {settings.trials}")
    study, meta, fs = _open(out, settings, resume, featureset)  # (checks only: nothing written yet)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    lock = RunDirLock(out).acquire()
    try:
        if study is None:
            if any(p.name != ".lock" for p in out.iterdir()):
                raise TuneError(f"{out}: not empty (--resume continues the study in it; or use a new --out)")
            study = _create(out, meta)
        elif settings.trials is not None and settings.trials != meta["trials"]:
            meta["trials"] = settings.trials  # --resume --trials N: a new total for the same study
            study.set_user_attr(META_KEY, meta)
        mark_interrupted(study, out, RunConfig.from_dict(meta["base_config"]).train.eval_k, log)
        train = meta["base_config"]["train"]
        log(f"study {out}: {meta['dataset_name']}, space {meta['space']}, {len(counted(study))}/{meta['trials']} "
            f"trial(s) done; objective: {objective(train.get('select', 'val'), train['eval_k'])}; seed {meta['seed']}")
        records = run_trials(study, meta, out, fs, log, verbose, trial_log)
        best, final, summary = finish(out, meta, records, fs, log, verbose)
        return TuneResult(out=out, records=records, best=best, final_metrics=final, summary=summary)
    except BaseException:
        if created and study is None:
            lock.release()
            lock.path.unlink(missing_ok=True)
            out.rmdir()
        raise
    finally:
        lock.release()
