"""One tuning trial: train a sampled RunConfig on train/validation only (never test) and keep its record.

A trial's run directory is ``DIR/trials/NNNN`` (NNNN = the Optuna trial number): what the Trainer
writes (config.json, history.json, metrics.json with validation only, eval/val-*, stages/, tensorboard/),
plus ``trial.json`` (the record) and ``log.txt`` (the Trainer's progress lines). ``DIR/trials.jsonl``
holds every record, one per line, in trial order, rewritten atomically after each trial.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

from cvs_tf.config import RunConfig, select_folds
from cvs_tf.tuning.space import SearchSpace, apply_values

__all__ = ["COMPLETE", "FAIL", "INTERRUPTED", "TuneError", "read_records", "run_trial", "trial_dir", "write_record",
           "write_trials_jsonl"]

COMPLETE, FAIL, INTERRUPTED = "COMPLETE", "FAIL", "INTERRUPTED"
TRIALS_DIR, RECORD, RECORDS = "trials", "trial.json", "trials.jsonl"


class TuneError(ValueError):
    """A tuning directory or study cannot be used as asked (one line, names DIR)."""


def trial_dir(out: Path, number: int) -> Path:
    return Path(out) / TRIALS_DIR / f"{number:04d}"


def new_record(number: int, slot: int, params: dict, k: int) -> dict:
    """A trial's record before it ran (``state`` None)."""
    return {"number": number, "slot": slot, "state": None, "params": params, "config": None,
            "k": k, "val_map": None, "val_map_all": None, "epochs": None, "best_epochs": None,
            "wall_s": None, "error": None, "run_dir": f"{TRIALS_DIR}/{number:04d}"}


def run_trial(out: Path, record: dict, values: dict, *, base: RunConfig, featureset, verbose=0,
              log: Callable[[str], None] | None = None) -> dict:
    """Train ``base`` with ``values`` set into the trial's run directory; fill and write ``record``.

    The Trainer runs with ``test_split=False`` (the test split is never read) and no checkpoint; under
    ``train.select cvK`` the trial is the K fold runs of :func:`cvs_tf.training.selection.cross_validate`
    (in ``fold-N/``), its score their mean, and its record keeps the choice as ``selection``.
    A ValueError (a bad sampled value, a diverging loss, too large a batch), an OSError or a
    TensorFlow runtime error makes the trial ``FAIL`` with the one-line error; anything else
    (a bug, Ctrl-C) propagates.
    """
    import keras
    import tensorflow as tf

    from cvs_tf.training.trainer import Trainer

    run_dir, lines = trial_dir(out, record["number"]), []
    sink = (lambda m: (lines.append(m), log(m))) if log else lines.append
    t0 = time.monotonic()
    try:
        cfg = apply_values(base, values)
        record["config"] = cfg.to_dict()
        if select_folds(cfg.train.select) is not None:
            from cvs_tf.training.selection import cross_validate

            sel = cross_validate(cfg, featureset, work_dir=run_dir, verbose=verbose, log=sink, run_log=sink)
            record["val_map"], record["selection"] = sel["score"], sel
        else:
            result = Trainer(cfg, run_dir, featureset=featureset, test_split=False, checkpoint=False,
                             verbose=verbose, log=sink).run()
            val, val_all = result.metrics.get("val") or {}, result.metrics.get("val_all") or {}
            record["val_map"], record["val_map_all"] = val.get("overall_mean"), val_all.get("overall_mean")
            del result
        if not (isinstance(record["val_map"], float) and math.isfinite(record["val_map"])):
            raise ValueError(f"validation mAP@{record['k']} is not a finite number ({record['val_map']})")
        record["state"] = COMPLETE
    except (ValueError, OSError, tf.errors.OpError) as exc:
        record["state"], record["error"] = FAIL, " ".join(str(exc).split()) or type(exc).__name__
    finally:
        record["wall_s"] = round(time.monotonic() - t0, 3)
        keras.utils.clear_session()  # each trial builds a fresh model: free the last one's graph (and gc)
    if record.get("selection"):
        record["epochs"] = record["best_epochs"] = record["selection"]["stage_epochs"]
    else:
        _read_epochs(run_dir, record)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "log.txt").write_text("".join(f"{m}\n" for m in lines), encoding="utf-8")
    write_record(out, record)
    return record


def _read_epochs(run_dir: Path, record: dict) -> None:
    try:
        stages = json.loads((run_dir / "history.json").read_text())["stages"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    record["epochs"] = [len(s.get("epochs", [])) for s in stages]
    record["best_epochs"] = [s.get("best_epoch") for s in stages]


def write_record(out: Path, record: dict) -> None:
    from cvs_tf.training.checkpoint import write_json

    write_json(trial_dir(out, record["number"]) / RECORD, record)


def read_records(out: Path) -> list[dict]:
    """Every trial record under ``DIR/trials``, by trial number (an unreadable one is skipped; a readable one
    with a wrongly typed field is a ValueError naming the file and field: :func:`check_record`)."""
    records = []
    for p in sorted((Path(out) / TRIALS_DIR).glob(f"*/{RECORD}")):
        try:
            rec = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        records.append(check_record(p, rec))
    return sorted(records, key=lambda r: r["number"])


def check_record(path: Path, rec) -> dict:
    """``rec`` when every field the study and its report read has the right JSON type."""
    from cvs_tf.utils.fields import Fields

    f = Fields(path, rec)
    f.get("number", "integer", low=0)
    f.get("slot", "integer")
    f.get("k", "integer", low=1)
    f.get("state", "string", "null", choices=(COMPLETE, FAIL, INTERRUPTED))
    for key in ("val_map", "val_map_all", "wall_s"):
        f.get(key, "number", "null")
    f.get("error", "string", "null")
    f.get("params", "object")
    f.get("config", "object", "null")
    if rec["state"] == COMPLETE:
        f.get("val_map", "number")
        f.get("config", "object")
    return rec


def write_trials_jsonl(out: Path) -> list[dict]:
    """Rewrite ``DIR/trials.jsonl`` from the records (atomically); returns them."""
    from cvs_tf.utils.atomic import atomic_file

    records = read_records(out)
    with atomic_file(Path(out) / RECORDS) as f:
        for r in records:
            f.write(json.dumps(r, sort_keys=False) + "\n")
    return records


def interrupted_record(out: Path, number: int, slot: int | None, params: dict, k: int) -> dict:
    """The record of a trial a kill or Ctrl-C left unfinished (it is marked failed and its slot run again)."""
    record = new_record(number, slot if slot is not None else -1, params, k)
    record.update(state=INTERRUPTED, error="interrupted (the trial did not finish; its slot was run again)")
    _read_epochs(trial_dir(out, number), record)
    write_record(out, record)
    return record


def describe_space_params(search: SearchSpace, values: dict) -> dict:
    """``{parameter name: value}`` of sampled ``{field: value}`` (the record's ``params``)."""
    return {p.name: values[p.field] for p in search.params if p.field in values}
