"""Semi-hard mining, sort-based against the (anchors × candidates × negatives) cube: loss with its gradient at B = 128 and 1024, and in the CVS+attention loss terms.

Two measurements, every case interleaved with the others in one process (same machine load):

* the within-set semi-hard triplet loss with its gradient w.r.t. the embeddings, one set of B
  Gaussian embeddings (D = 128, 20 classes), XLA-compiled, for B = 128 and B = 1024, mined by
  ``cvs_tf.losses.triplet._semi_hard_from_masks`` (sort per anchor + binary search, the
  implementation) and by ``_semi_hard_from_masks_cube`` (the previous O(B²·M) rule, kept as the
  reference); both give the same values and gradients (``tests/losses/test_triplet_mining.py``);
* forward + backward of ``loss_terms`` of the 5-modality CVS+attention model on one batch of the
  XMedia-shaped synthetic stand-in (``bench/train_step.py``'s *loss terms*), traced once with each
  mining, under the default XLA mode (full run only).
"""

from __future__ import annotations

import contextlib
import datetime as _dt

import numpy as np

from bench import machine, machine_line, write_section
from bench.common import fmt_ms, header, interleaved, paired_ratio, stats, tf_line

NAME = "mining"
MINERS = ("cube", "sort")
#: issue #23 goals: the loss terms at B = 128 take <= 1/3 of the cube's time; B = 128 -> 1024 grows <= 20x
GOAL_SHARE, GOAL_GROWTH = 1 / 3, 20.0


def settings(quick: bool) -> dict:
    if quick:
        return {"batches": (32, 128), "dim": 32, "classes": 20, "rounds": 2, "calls": 2, "step": False}
    return {"batches": (128, 1024), "dim": 128, "classes": 20, "rounds": 5, "calls": 2, "step": True}


def _miner(name: str):
    from cvs_tf.losses import triplet

    return triplet._semi_hard_from_masks if name == "sort" else triplet._semi_hard_from_masks_cube


@contextlib.contextmanager
def mining(name: str):
    """Within the block, the triplet losses mine with ``name`` (used while a function traces)."""
    from cvs_tf.losses import triplet

    kept = triplet._semi_hard_from_masks
    triplet._semi_hard_from_masks = _miner(name)
    try:
        yield
    finally:
        triplet._semi_hard_from_masks = kept


def loss_with_gradient(name: str, batch: int, dim: int, classes: int, seed: int = 0):
    """XLA-compiled semi-hard loss + gradient w.r.t. the embeddings of one (batch, dim) set, mined by ``name``."""
    import tensorflow as tf

    from cvs_tf.losses.triplet import _intra_masks

    rng = np.random.default_rng(seed)
    emb = tf.constant(rng.standard_normal((batch, dim)).astype(np.float32))
    labels = tf.constant(rng.integers(0, classes, size=batch))
    miner = _miner(name)

    @tf.function(jit_compile=True)
    def run():
        with tf.GradientTape() as tape:
            tape.watch(emb)
            loss = miner(*_intra_masks(labels, emb), 1.0)
        return loss, tape.gradient(loss, emb)

    return run


def step_loss_terms(name: str):
    """``bench/train_step.py``'s loss-terms case of CVS+attention (default XLA), traced with the ``name`` mining."""
    from bench.standin import setup, sizes
    from bench.train_step import loss_only

    st = sizes(False)
    s = setup("cvs", 0, "full", fs=st["fs"], batch=st["batch"], dim=st["dim"], **st["extra"])
    fn = loss_only(s.model, s.constant, "full")
    with mining(name):
        fn()   # traces and compiles with this mining; later calls reuse it
    return fn


def measure(quick: bool) -> dict:
    st = settings(quick)
    cases = {}
    for b in st["batches"]:
        for name in MINERS:
            cases[f"B={b} {name}"] = loss_with_gradient(name, b, st["dim"], st["classes"])
    values = {k: fn() for k, fn in cases.items()}
    for b in st["batches"]:
        (lc, gc), (ls, gs) = values[f"B={b} cube"], values[f"B={b} sort"]
        assert abs(float(lc) - float(ls)) <= 1e-6 * max(1.0, abs(float(lc))), (b, float(lc), float(ls))
        assert np.allclose(gc.numpy(), gs.numpy(), rtol=1e-6, atol=1e-6), b
    if st["step"]:
        for name in MINERS:
            cases[f"step {name}"] = step_loss_terms(name)
    times, _ = interleaved(cases, st["rounds"], st["calls"])
    return {"settings": st, "times": times}


def summary(m: dict) -> dict:
    st, times = m["settings"], m["times"]
    lo, hi = st["batches"]
    out = {"rows": []}
    for b in st["batches"]:
        out["rows"].append({
            "case": f"loss + gradient, B = {b}, D = {st['dim']}",
            "cube": stats(times[f"B={b} cube"]), "sort": stats(times[f"B={b} sort"]),
            "ratio": paired_ratio(times[f"B={b} sort"], times[f"B={b} cube"], st["calls"]),
        })
    if "step cube" in times:
        out["rows"].append({
            "case": "CVS+attention loss terms (5 modalities, B = 128)",
            "cube": stats(times["step cube"]), "sort": stats(times["step sort"]),
            "ratio": paired_ratio(times["step sort"], times["step cube"], st["calls"]),
        })
    for name in MINERS:
        out[f"growth_{name}"] = stats(times[f"B={hi} {name}"])["median"] / stats(times[f"B={lo} {name}"])["median"]
    return out


def markdown(m: dict, s: dict, command: str, mach: dict) -> str:
    st = m["settings"]
    lo, hi = st["batches"]
    lines = [
        "## Semi-hard mining: sort per anchor against the cube (bench/mining.py)",
        "",
        f"Command: `{command}` — measured {_dt.date.today().isoformat()} on: {machine_line(mach)}; {tf_line()}.",
        "",
        f"Synthetic Gaussian embeddings, {st['classes']} classes; XLA (`jit_compile=True`); "
        f"{st['rounds']} interleaved rounds × {st['calls']} calls after 2 warm-up calls. *cube*: the "
        "previous (anchors × candidates × negatives) selection, O(B²·M); *sort*: each anchor's "
        "negatives sorted once (bitonic), every candidate's semi-hard negative by a binary search, O(B·M log² M). "
        "Same values and gradients (checked in the run, and by `tests/losses/test_triplet_mining.py`).",
        "",
        "| case | cube ms, median [min–max] | sort ms, median [min–max] | sort / cube, per round |",
        "|---|---:|---:|---:|",
    ]
    for r in s["rows"]:
        lines.append(f"| {r['case']} | {fmt_ms(r['cube'])} | {fmt_ms(r['sort'])} | {r['ratio']['median']:.2f} "
                     f"[{r['ratio']['min']:.2f}–{r['ratio']['max']:.2f}] |")
    lines += [
        "",
        f"Growth from B = {lo} to B = {hi} (ratio of medians): cube {s['growth_cube']:.0f}×, sort "
        f"{s['growth_sort']:.0f}×.",
    ]
    step = [r for r in s["rows"] if r["case"].startswith("CVS")]
    if step:
        share = step[0]["ratio"]["median"]
        lines.append(
            f"Goals (issue #23): loss terms at B = 128 ≤ 1/3 of the cube's time — "
            f"{'**met**' if share <= GOAL_SHARE else '**missed**'} ({share:.2f}); loss + gradient, B = {lo} → {hi}, grows ≤ "
            f"{GOAL_GROWTH:.0f}× — {'**met**' if s['growth_sort'] <= GOAL_GROWTH else '**missed**'} "
            f"({s['growth_sort']:.0f}×).")
    return "\n".join(lines)


def run(quick: bool = False, *, write_docs: bool | None = None) -> list[dict]:
    mach = machine()
    print(header(NAME, quick, "jit_compile=True"), flush=True)
    m = measure(quick)
    s = summary(m)
    for r in s["rows"]:
        print(f"   {r['case']}: cube {fmt_ms(r['cube'])} ms, sort {fmt_ms(r['sort'])} ms, sort/cube "
              f"{r['ratio']['median']:.2f}", flush=True)
    print(f"   growth {m['settings']['batches'][0]} -> {m['settings']['batches'][1]}: cube {s['growth_cube']:.1f}x, "
          f"sort {s['growth_sort']:.1f}x", flush=True)
    if write_docs if write_docs is not None else not quick:
        path = write_section(NAME, markdown(m, s, "python -m bench --only mining", mach))
        print(f"   wrote {path.name} section {NAME}")
    return [{"bench": NAME, "case": r["case"], "cube ms": fmt_ms(r["cube"]), "sort ms": fmt_ms(r["sort"]),
             "sort/cube": f"{r['ratio']['median']:.2f}"} for r in s["rows"]]
