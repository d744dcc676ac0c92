"""Training-step efficiency: achieved matmul FLOP/s of CVS+attention, M-CVS stage 4 and RVS stage 4 over the plain-matmul limit, per XLA mode.

For each space on the XMedia-shaped synthetic stand-in (5 modalities, dims 4096/3000/29/4096/
4700, batch 128, D = 512) and each XLA mode of ``CrossModalModel.compile`` (``off``: no XLA;
``loss``: TF graph with only the loss terms XLA-compiled; ``full``: the whole step one XLA
cluster), one process measures, interleaved so that every case sees the same machine load:

* the step time (Keras' own compiled train function on a constant in-memory batch), median
  [min–max] over ``rounds × calls`` synchronised steps after warm-up;
* the same step's matrix products alone (:func:`bench.flops.step_products`: forward, plus the
  backward products the trainable variables need), each run once as a plain ``tf.matmul`` with
  the same shapes, with and without XLA: the faster of the two is the machine's practical limit
  for this shape mix.

fraction of limit = (FLOPs / step time) / (FLOPs / skeleton time) = skeleton time / step time.
"""

from __future__ import annotations

import datetime as _dt

from bench import machine, machine_line, write_section
from bench.common import (
    fmt_ms,
    header,
    interleaved,
    matmul_skeleton,
    paired_ratio,
    stats,
    tf_line,
    total_flops,
)
from bench.flops import step_products
from bench.standin import setup, sizes

NAME = "train_step"
GOAL = 0.5
#: (label, space, stage index) of the measured spaces
SPACES = (("CVS+attention", "cvs", 0), ("M-CVS stage 4", "mcvs", 3), ("RVS stage 4", "rvs", 3))
SPACE_NAMES = tuple(space for _, space, _ in SPACES)
MODES = ("off", "loss", "full")


def settings(quick: bool, space: str | None = None) -> dict:
    """Sizes, spaces and repeats; ``space`` (cvs, mcvs or rvs) measures that space alone."""
    spaces = tuple(s for s in SPACES if s[1] == space) if space else SPACES
    if quick:   # smoke run: small shapes, one space (CVS unless ``space``; its last stage), the default mode against no XLA
        small = sizes(True)
        last = len(small["extra"]["modalities"]) - 2
        return {**small, "spaces": tuple((label, sp, min(stage, last)) for label, sp, stage in spaces[:1]),
                "modes": ("off", "full"), "rounds": 2, "calls": 2}
    return {**sizes(False), "spaces": spaces, "modes": MODES, "rounds": 8, "calls": 2}


def loss_only(model, constant, mode: str):
    """fwd+bwd of ``model.loss_terms`` alone (the cross-entropy and the semi-hard mining) on the
    fixed inputs of one batch, compiled as the step compiles it (XLA unless ``mode`` is off)."""
    import tensorflow as tf

    x, y = constant
    labels, logits, pair_emb, _ = model.loss_inputs(x, y, training=False)
    flat = tf.nest.flatten((logits, pair_emb))

    @tf.function(jit_compile=mode != "off")
    def run():
        with tf.GradientTape() as tape:
            tape.watch(flat)
            lg, pe = tf.nest.pack_sequence_as((logits, pair_emb), flat)
            loss = model.loss_terms(labels, lg, pe)["loss"]
        return tape.gradient(loss, flat)

    return run


def measure(quick: bool, space: str | None = None) -> dict:
    from cvs_tf.models.base import resolve_jit

    st = settings(quick, space)
    cases, setups, skeletons, products = {}, {}, {}, {}
    for label, space, stage in st["spaces"]:
        for mode in st["modes"]:
            s = setup(space, stage, mode, fs=st["fs"], batch=st["batch"], dim=st["dim"], **st["extra"])
            setups[(label, mode)] = s
            cases[f"{label} | {mode}"] = s.step_constant
            cases[f"{label} | {mode} loss only"] = loss_only(s.model, s.constant, mode)
        products[label] = step_products(s.model, st["batch"])
        for jit in (False, True):
            skeletons[(label, jit)] = matmul_skeleton(products[label], jit)
            cases[f"{label} | matmuls {'xla' if jit else 'tf'}"] = skeletons[(label, jit)]
    times, _ = interleaved(cases, st["rounds"], st["calls"])
    results = []
    for label, _space, _stage in st["spaces"]:
        flops = total_flops(products[label])
        sk = {jit: stats(times[f"{label} | matmuls {'xla' if jit else 'tf'}"]) for jit in (False, True)}
        best_jit = min(sk, key=lambda j: sk[j]["median"])
        best = sk[best_jit]
        limit = flops / best["median"]
        for mode in st["modes"]:
            t = stats(times[f"{label} | {mode}"])
            frac = paired_ratio(times[f"{label} | matmuls {'xla' if best_jit else 'tf'}"], times[f"{label} | {mode}"],
                                st["calls"])
            results.append({
                "space": label, "mode": mode, "step": t, "first_s": setups[(label, mode)].first_call_s,
                "gflop": flops / 1e9, "achieved": flops / t["median"], "limit": limit,
                "limit_tf": flops / sk[False]["median"], "limit_xla": flops / sk[True]["median"],
                "fraction": frac["median"], "fraction_range": (frac["min"], frac["max"]),
                "loss_only": stats(times[f"{label} | {mode} loss only"]), "matmuls": best,
                "speedup": paired_ratio(times[f"{label} | off"], times[f"{label} | {mode}"], st["calls"]),
                "trainable_params": setups[(label, mode)].model.parameter_report()["trainable_params"],
            })
    return {"results": results, "settings": st, "default_mode": resolve_jit(True)}


def row(r: dict, default_mode: str) -> dict:
    return {
        "bench": NAME,
        "case": f"{r['space']} XLA={r['mode']}{' (default)' if r['mode'] == default_mode else ''}",
        "step ms": fmt_ms(r["step"]),
        "vs no XLA": f"{r['speedup']['median']:.2f}×",
        "GFLOP/step": f"{r['gflop']:.2f}",
        "GFLOP/s": f"{r['achieved'] / 1e9:.1f}",
        "of matmul limit": f"{r['fraction']:.0%}",
    }


def markdown(m: dict, command: str, mach: dict) -> str:
    st, res, default = m["settings"], m["results"], m["default_mode"]
    lines = [
        "## Training step: achieved matmul FLOP/s over the plain-matmul limit (bench/train_step.py)",
        "",
        f"Command: `{command}` — measured {_dt.date.today().isoformat()} on: {machine_line(mach)}; {tf_line()}.",
        "",
        f"Data: XMedia-shaped **synthetic stand-in** (5 modalities, dims 4096/3000/29/4096/4700, 20 "
        f"classes), batch {st['batch']}, D = {st['dim']}; Keras' compiled train function on a constant "
        f"in-memory batch, {st['rounds']} interleaved rounds × {st['calls']} steps after 2 warm-up steps "
        f"per case. Default XLA mode (`jit_compile=True`): `{default}`.",
        "",
        "| space | XLA mode | step ms, median [min–max] | speed-up over no XLA | first call s (trace + compile) "
        "| matmul GFLOP/step | achieved GFLOP/s | limit GFLOP/s (tf.matmul / XLA dot) | fraction of limit |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res:
        mark = " (default)" if r["mode"] == default else ""
        lines.append(
            f"| {r['space']} | `{r['mode']}`{mark} | {fmt_ms(r['step'])} | {r['speedup']['median']:.2f}× "
            f"[{r['speedup']['min']:.2f}–{r['speedup']['max']:.2f}] | {r['first_s']:.0f} | {r['gflop']:.2f} "
            f"| {r['achieved'] / 1e9:.1f} | {r['limit'] / 1e9:.1f} ({r['limit_tf'] / 1e9:.1f} / "
            f"{r['limit_xla'] / 1e9:.1f}) | {r['fraction']:.0%} [{r['fraction_range'][0]:.0%}–{r['fraction_range'][1]:.0%}] |")
    lines += [
        "",
        "Where the step's time goes (medians, same run): *matmuls* is the skeleton above (the products "
        "alone); *loss terms* is forward + backward of `loss_terms` alone on one batch's fixed inputs "
        "(cross-entropy and the semi-hard mining of every triplet term), compiled like the step; "
        "*rest* is what remains: elementwise model ops (ReLU, tanh, softmax, L2), the Adam update, "
        "framework overhead, and any overlap lost between them.",
        "",
        "| space | XLA mode | step ms | matmuls ms | loss terms ms | rest ms |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in res:
        step, mm, lo = r["step"]["median"], r["matmuls"]["median"], r["loss_only"]["median"]
        lines.append(f"| {r['space']} | `{r['mode']}` | {step * 1e3:.0f} | {mm * 1e3:.0f} | {lo * 1e3:.0f} "
                     f"| {(step - mm - lo) * 1e3:.0f} |")
    dflt = [r for r in res if r["mode"] == default]
    met = all(r["fraction"] >= GOAL for r in dflt)
    lines += [
        "",
        "FLOPs: every matrix product of the step, counted analytically (`bench/flops.py`): the forward "
        "pass, plus `dW = Xᵀ·dY` for trainable kernels and `dX = dY·Wᵀ` where a trainable part lies "
        "upstream; frozen parts (M-CVS/RVS stage 4) count their forward products only. The *limit* "
        "runs exactly these products as plain `tf.matmul`s in one `tf.function`, without and with "
        "XLA, interleaved with the steps; the faster is the limit, so *fraction* = skeleton time / "
        "step time, taken per round (the two ran back to back) and shown as median [min–max] over rounds; "
        "*speed-up over no XLA* is the per-round ratio of the `off` step to this mode's step.",
        "",
        f"Goal: the default mode reaches ≥ {GOAL:.0%} of the limit — "
        + ("**met** for every space." if met else "**missed** for "
           + ", ".join(f"{r['space']} ({r['fraction']:.0%})" for r in dflt if r["fraction"] < GOAL) + "."),
    ]
    return "\n".join(lines)


def run(quick: bool = False, *, write_docs: bool | None = None, space: str | None = None) -> list[dict]:
    """Measure every space, or only ``space`` (one of :data:`SPACE_NAMES`; docs untouched then, like ``quick``)."""
    if space is not None and space not in SPACE_NAMES:
        raise ValueError(f"unknown space {space!r}; expected one of {', '.join(SPACE_NAMES)}")
    mach = machine()
    print(header(NAME, quick, "off / loss / full (per row)"), flush=True)
    m = measure(quick, space)
    for r in m["results"]:
        print(f"   {r['space']:<15} XLA={r['mode']:<5} step {fmt_ms(r['step'])} ms, first call "
              f"{r['first_s']:.1f} s, {r['gflop']:.2f} GFLOP, {r['achieved'] / 1e9:.1f} GFLOP/s, limit "
              f"{r['limit'] / 1e9:.1f} GFLOP/s -> {r['fraction']:.0%}, {r['speedup']['median']:.2f}x vs off; matmuls alone "
              f"{r['matmuls']['median'] * 1e3:.0f} ms, loss terms alone {r['loss_only']['median'] * 1e3:.0f} ms",
              flush=True)
    if write_docs if write_docs is not None else not quick and space is None:
        path = write_section(NAME, markdown(m, "python -m bench", mach))
        print(f"   wrote {path.name} section {NAME}")
    return [row(r, m["default_mode"]) for r in m["results"]]
