"""Input-pipeline overhead: training-step time with the real tf.data index pipeline over the time on a constant in-memory batch.

Same compiled model (CVS+attention on the XMedia-shaped synthetic stand-in, default XLA mode),
two ways to feed it, interleaved:

* **constant**: Keras' train function called on one (features, labels) batch already in memory
  (no tf.data, no gather);
* **pipeline**: Keras' train function called on the iterator of ``cvs_tf.data.feature_dataset``,
  exactly as the Trainer's ``fit`` does: tf.data draws the seeded class-aligned index batch,
  gathers its rows from the ``FeatureBank`` on its own threads and prefetches the batch; the
  step itself takes the ``(features, labels)`` batch (the same compiled function as *constant*).

ratio = median pipeline step / median constant step (goal ≤ 1.05). It also times the index
pipeline alone, the gather of one batch alone, and one gathered batch pulled from the feature
pipeline's iterator alone (no model).
"""

from __future__ import annotations

import datetime as _dt
import time

from bench import machine, machine_line, write_section
from bench.common import fmt_ms, header, interleaved, paired_ratio, stats, tf_line
from bench.standin import setup, sizes

NAME = "pipeline_overhead"
GOAL = 1.05


def settings(quick: bool) -> dict:
    return {**sizes(quick), "rounds": 3 if quick else 6, "calls": 3 if quick else 5}


def index_rate(ds, n: int) -> dict:
    """Seconds per batch pulled from a fresh iterator of ``ds`` (no model)."""
    it = iter(ds)
    next(it)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        next(it)
        times.append(time.perf_counter() - t0)
    return stats(times)


def measure(quick: bool) -> dict:
    import tensorflow as tf

    from cvs_tf.models.base import resolve_jit

    st = settings(quick)
    mode = resolve_jit(True)
    s = setup("cvs", 0, mode, fs=st["fs"], batch=st["batch"], dim=st["dim"], **st["extra"])
    idx = next(iter(s.index_ds))
    gather = tf.function(lambda: s.bank.gather(idx))
    times, first = interleaved({"constant": s.step_constant, "pipeline": s.step_pipeline, "gather": gather},
                               st["rounds"], st["calls"])
    c, p, g = stats(times["constant"]), stats(times["pipeline"]), stats(times["gather"])
    ratio = paired_ratio(times["pipeline"], times["constant"], st["calls"])
    return {"mode": mode, "constant": c, "pipeline": p, "gather": g, "index": index_rate(s.index_ds, 50),
            "feature": index_rate(s.feature_ds, 50),
            "ratio": ratio["median"], "ratio_range": (ratio["min"], ratio["max"]),
            "ratio_of_medians": p["median"] / c["median"], "first_pipeline_s": first["pipeline"], "settings": st}


def markdown(m: dict, command: str, mach: dict) -> str:
    st = m["settings"]
    met = m["ratio"] <= GOAL
    return "\n".join([
        "## Input pipeline overhead (bench/pipeline_overhead.py)",
        "",
        f"Command: `{command}` — measured {_dt.date.today().isoformat()} on: {machine_line(mach)}; {tf_line()}.",
        "",
        f"CVS+attention on the XMedia-shaped **synthetic stand-in**, batch {st['batch']}, D = {st['dim']}, "
        f"XLA mode `{m['mode']}` (the default here); {st['rounds']} interleaved rounds × {st['calls']} steps.",
        "",
        "| feed | step ms, median [min–max] |",
        "|---|---:|",
        f"| constant in-memory batch | {fmt_ms(m['constant'])} |",
        f"| real pipeline (tf.data: index batch, gather, prefetch) | {fmt_ms(m['pipeline'])} |",
        f"| gather of one batch alone | {fmt_ms(m['gather'])} |",
        f"| one index batch from the tf.data iterator alone | {fmt_ms(m['index'])} |",
        f"| one gathered batch from the feature pipeline's iterator alone | {fmt_ms(m['feature'])} |",
        "",
        f"**Ratio pipeline / constant: {m['ratio']:.3f}** [{m['ratio_range'][0]:.3f}–{m['ratio_range'][1]:.3f}] "
        f"(median over rounds of each round's ratio; ratio of the overall medians {m['ratio_of_medians']:.3f}; "
        f"goal ≤ {GOAL}: {'met' if met else 'missed'}). "
        "The batches are drawn and gathered by tf.data on its own threads ahead of the step (prefetch), "
        "so the step waits only for the hand-over of a ready batch; on 2 shared cores those threads "
        "compete with the step's own, which is what the ratio measures. Its spread comes from the machine "
        "load, which the interleaving spreads evenly over both feeds.",
    ])


def run(quick: bool = False, *, write_docs: bool | None = None) -> list[dict]:
    mach = machine()
    print(header(NAME, quick, "default mode (see row)"), flush=True)
    m = measure(quick)
    print(f"   constant {fmt_ms(m['constant'])} ms, pipeline {fmt_ms(m['pipeline'])} ms, gather "
          f"{fmt_ms(m['gather'])} ms, index batch {fmt_ms(m['index'])} ms -> ratio {m['ratio']:.3f}", flush=True)
    if write_docs if write_docs is not None else not quick:
        path = write_section(NAME, markdown(m, "python -m bench", mach))
        print(f"   wrote {path.name} section {NAME}")
    return [{"bench": NAME, "case": f"CVS+attention XLA={m['mode']}", "step ms": fmt_ms(m["pipeline"]),
             "constant ms": fmt_ms(m["constant"]), "pipeline/constant": f"{m['ratio']:.3f}",
             "goal": f"≤ {GOAL}: {'met' if m['ratio'] <= GOAL else 'MISSED'}"}]
