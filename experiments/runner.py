"""Dispatch: run one experiment through its registered kind and write ``results/NAME.{md,csv,json}``, or re-render recorded runs.

The pieces every kind uses live in :mod:`experiments.data` (where a dataset comes from),
:mod:`experiments.context` (training and evaluating runs), :mod:`experiments.report`
(aggregation, Markdown, writing) and :mod:`experiments.claims`; each kind is one module of
:mod:`experiments.kinds`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from experiments.context import Context
from experiments.data import StoredData, check_data_arg
from experiments.errors import ExperimentError, SpecError
from experiments.kinds import get_kind, kind_names
from experiments.report import finish
from experiments.spec import spec_from_dict

FORMAT = "cvs_tf.experiment"


def run_experiment(ctx: Context) -> dict[str, Path]:
    """Run one experiment end to end and write its outputs; returns the written paths."""
    kind = get_kind(ctx.exp.kind)
    check_data_arg(ctx.data, ctx.exp.datasets, ctx.exp.name)
    t0 = time.time()
    out = kind.run(ctx)
    return finish(ctx, out, (time.time() - t0) / 60)


def rerender(name: str, results: Path) -> dict[str, Path]:
    """Rewrite ``results/NAME.{md,csv,json}`` (and its figure) from the runs recorded in its JSON, without
    training: the spec, seeds, data records and per-run tables are the stored ones."""
    path = Path(results) / f"{name}.json"
    try:
        rec = json.loads(path.read_text())
    except FileNotFoundError:
        raise ExperimentError(f"{path}: no results to render (run the experiment first)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExperimentError(f"{path}: unreadable ({' '.join(str(exc).split())})") from None
    try:
        render = get_kind(rec.get("kind")).render if isinstance(rec, dict) and rec.get("format") == FORMAT else None
    except SpecError:
        render = None
    if render is None:
        kinds = ", ".join(k for k in kind_names() if get_kind(k).render is not None)
        raise ExperimentError(f"{path}: only results of the kind(s) {kinds} can be re-rendered")
    exp = spec_from_dict(rec["spec"], str(path.name))
    by_name = {d["dataset"]: d for d in rec["data"]}
    datas = [StoredData(d, by_name[d.name]) for d in exp.datasets]
    ctx = Context(exp=exp, quick=rec["quick"], seeds=rec["seeds"], results=Path(results), command=rec["command"],
                  batch=rec.get("batch_command") or "", code=rec.get("code") or "")
    out = render(ctx, datas, rec["runs"])
    out["record"].update(created=rec["created"], rendered=time.strftime("%Y-%m-%dT%H:%M:%S"))
    return finish(ctx, out, rec.get("wall_min") or 0.0)


__all__ = ["rerender", "run_experiment"]
