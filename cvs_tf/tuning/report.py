"""The end of a study: the best trial by validation mAP, ``best_config.json``, the one final run on test, and the summary.

Written into DIR: ``best_config.json`` (a RunConfig JSON that ``python -m cvs_tf.train --config``
takes unchanged), ``best_run/`` (the chosen configuration trained again, evaluated on validation
and, once, on test), ``summary.json``, ``summary.md`` (trials sorted by validation mAP, the chosen
config, its test mAP) and ``val_map.png`` (validation mAP per trial, with the running best).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from cvs_tf.config import RunConfig, select_folds
from cvs_tf.tuning.trial import COMPLETE, TuneError

__all__ = ["BEST_CONFIG", "BEST_RUN", "best_trial", "finish"]

BEST_CONFIG, BEST_RUN, SUPERSEDED = "best_config.json", "best_run", "best_run.superseded-"
SUMMARY_JSON, SUMMARY_MD, PLOT = "summary.json", "summary.md", "val_map.png"


def best_trial(records: list[dict]) -> dict | None:
    """The completed trial with the highest validation mAP (ties: the earlier trial); None if none completed."""
    done = [r for r in records if r["state"] == COMPLETE]
    return max(done, key=lambda r: (r["val_map"], -r["number"])) if done else None


def _overall(metrics: dict | None, key: str):
    rec = (metrics or {}).get(key)
    return rec.get("overall_mean") if rec else None


def final_run(out: Path, cfg: RunConfig, fs, log, verbose=0, selection=None) -> dict:
    """``metrics`` of the chosen configuration trained into DIR/best_run with the test split (once).

    Under ``train.select cvK`` the trial's ``selection`` (its epochs) is reused: the final run trains on
    train+val for them (:func:`cvs_tf.training.selection.train_selected`).

    A finished best_run of this very configuration is reused (the test split is not read again);
    one of another configuration (a resumed study found a better trial) is kept as
    ``best_run.superseded-N``; an unfinished one (a kill) is removed and run again.
    """
    from cvs_tf.training.checkpoint import read_json
    from cvs_tf.training.run_dir import read_run_config
    from cvs_tf.training.selection import final_config, train_selected

    target = out / BEST_RUN
    trained = final_config(cfg) if select_folds(cfg.train.select) is not None else cfg
    if target.exists():
        if (target / "metrics.json").is_file():
            if read_run_config(target)[0].to_dict() == RunConfig.from_dict(trained.to_dict()).to_dict():
                log(f"final run: {target} already holds the chosen configuration's results (test not read again)")
                return read_json(target / "metrics.json", {})
            n = 1 + len(list(out.glob(f"{SUPERSEDED}*")))
            target.rename(out / f"{SUPERSEDED}{n}")
            log(f"final run: the previous best_run (another configuration) is kept as {SUPERSEDED}{n}")
        else:
            shutil.rmtree(target)
            log(f"final run: removed the unfinished {target} (interrupted); training it again")
    how = ("on train+val for the epochs its cross-validation chose" if trained is not cfg
           else "on train, selected on validation")
    log(f"final run: the chosen configuration {how}, evaluated once on test -> {target}")
    result = train_selected(cfg, target, featureset=fs, selection=selection, test_split=True, checkpoint=False,
                            verbose=verbose, log=log)
    return result.metrics


def _superseded(out: Path) -> list[dict]:
    from cvs_tf.training.checkpoint import read_json

    runs = []
    for p in sorted(out.glob(f"{SUPERSEDED}*")):
        m = read_json(p / "metrics.json", None)
        runs.append({"run_dir": p.name, "test_map": _overall(m, "test")})
    return runs


def _row(r: dict) -> dict:
    keys = ("number", "slot", "state", "val_map", "val_map_all", "epochs", "wall_s", "params", "error")
    return {k: r.get(k) for k in keys}


def summary_record(meta: dict, records: list[dict], best: dict, final: dict, out: Path) -> dict:
    done = sorted((r for r in records if r["state"] == COMPLETE), key=lambda r: (-r["val_map"], r["number"]))
    rest = [r for r in records if r["state"] != COMPLETE]
    k = final.get("k", best["k"])
    return {
        "format": "cvs_tf.tune/summary", "format_version": 1,
        "dataset": meta["dataset_name"], "dataset_sha256": meta["dataset_sha256"], "space": meta["space"],
        "seed": meta["seed"], "epochs": meta["epochs"], "trials_requested": meta["trials"],
        "objective": objective(RunConfig.from_dict(best["config"]).train.select, k),
        "trials": [_row(r) for r in done + rest],
        "best": {"trial": best["number"], "val_map": best["val_map"], "val_map_all": best["val_map_all"],
                 "params": best["params"], "config": best["config"], "config_file": BEST_CONFIG},
        "final": {"run_dir": BEST_RUN, "k": k, "val_map": _overall(final, "val"),
                  "val_map_all": _overall(final, "val_all"), "test_map": _overall(final, "test"),
                  "test_map_all": _overall(final, "test_all"), "data_label": final.get("data_label")},
        "superseded_final_runs": _superseded(out),
    }


def objective(select: str, k: int) -> str:
    """What a trial's score is, in words."""
    folds = select_folds(select)
    if folds is None:
        return f"validation mAP@{k} overall mean (independent protocol)"
    return f"{folds}-fold cross-validation over train+val: mean validation mAP@{k} over the folds at the chosen epoch"


def _num(v, fmt=".4f") -> str:
    return "-" if v is None else format(v, fmt)


def summary_markdown(s: dict) -> str:
    f, b = s["final"], s["best"]
    lines = [f"# Tuning: {s['space']} on {s['dataset']} ({len(s['trials'])} trial(s), seed {s['seed']})", "",
             f"Objective: {s['objective']}; the test split was read once, by the final run.", "",
             f"| rank | trial | state | val mAP@{f['k']} | val mAP@all | epochs | time (s) | parameters |",
             "|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(s["trials"], 1):
        params = ", ".join(f"{k}={_num(v, '.3g') if isinstance(v, float) else v}" for k, v in (r["params"] or {}).items())
        if r["error"]:
            params += f" — {r['error'][:100]}"
        rank = str(i) if r["state"] == COMPLETE else "-"
        lines.append(f"| {rank} | {r['number']} | {r['state']} | {_num(r['val_map'])} | {_num(r['val_map_all'])} | "
                     f"{sum(r['epochs'] or []) or '-'} | {_num(r['wall_s'], '.1f')} | {params} |")
    lines += ["", f"## Chosen: trial {b['trial']} ({s['best']['config_file']})", "", "```json",
              "{" + ",\n ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in b["config"].items()) + "}", "```", "",
              f"Final run ({f['run_dir']}, {f['data_label']}): val mAP@{f['k']} {_num(f['val_map'])}, "
              f"**test mAP@{f['k']} {_num(f['test_map'])}**, test mAP@all {_num(f['test_map_all'])}."]
    for r in s["superseded_final_runs"]:
        lines.append(f"Earlier final run {r['run_dir']} (a configuration chosen before the study was extended): "
                     f"test mAP@{f['k']} {_num(r['test_map'])}.")
    return "\n".join(lines) + "\n"


def plot_trials(records: list[dict], path: Path) -> None:
    """Validation mAP per trial (failed trials marked at the bottom) and the running best, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(7, 4))
    done = [r for r in records if r["state"] == COMPLETE]
    xs, ys = [r["number"] for r in done], [r["val_map"] for r in done]
    ax.plot(xs, ys, "o", label="trial")
    best, run = [], float("-inf")
    for y in ys:
        run = max(run, y)
        best.append(run)
    ax.step(xs, best, where="post", label="best so far")
    failed = [r["number"] for r in records if r["state"] != COMPLETE]
    if failed:
        ax.plot(failed, [min(ys, default=0.0)] * len(failed), "x", color="red", label="failed / interrupted")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(f"validation mAP@{records[0]['k'] if records else 50}")
    ax.legend(loc="lower right")
    fig.tight_layout()
    from cvs_tf.utils.atomic import atomic_path

    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def finish(out: Path, meta: dict, records: list[dict], fs, log, verbose=0) -> tuple[dict, dict, dict]:
    """``(best record, final metrics, summary)``: best_config.json, the final run, summary files and the plot."""
    from cvs_tf.training.checkpoint import write_json

    best = best_trial(records)
    if best is None:
        raise TuneError(f"{out}: no trial completed ({len(records)} failed; see {out / 'trials.jsonl'})")
    cfg = RunConfig.from_dict(best["config"])
    write_json(out / BEST_CONFIG, cfg.to_dict())
    log(f"best: trial #{best['number']}, val mAP@{best['k']} {best['val_map']:.4f} -> {out / BEST_CONFIG}")
    final = final_run(out, cfg, fs, log, verbose, best.get("selection"))
    summary = summary_record(meta, records, best, final, out)
    write_json(out / SUMMARY_JSON, summary)
    md = summary_markdown(summary)
    from cvs_tf.utils.atomic import atomic_file

    with atomic_file(out / SUMMARY_MD) as fh:
        fh.write(md)
    plot_trials(records, out / PLOT)
    log("\n" + md)
    return best, final, summary
