"""Cost of deterministic training: the step time with TensorFlow's op determinism on over off, side by side in one process.

For each space, identically seeded models are compiled on the same batch:

* ``default``: op determinism off, the default XLA mode (``full``: the whole step one XLA cluster);
* ``deterministic``: op determinism on (``TrainConfig.deterministic``, cvs_tf.training.determinism)
  and the XLA mode the Trainer then uses (``effective_jit``: ``loss``, since Keras compiles no whole
  step with XLA under op determinism);
* ``deterministic, full asked`` (full run only): op determinism on and ``jit_compile=True`` given to
  Keras as is, which then runs the step without XLA.

Each case sets the process-global flag to its own setting around every call, and the cases are
interleaved (bench.common.interleaved), so all see the same machine load; each ratio to
``default`` is taken per round and summarised as median [min–max].
"""

from __future__ import annotations

import datetime as _dt

from bench import machine, machine_line, write_section
from bench.common import fmt_ms, header, interleaved, paired_ratio, stats, tf_line
from bench.standin import Setup, config, sizes
from bench.train_step import SPACES

NAME = "determinism"
#: (case, op determinism, XLA mode given to the model: None = what the Trainer uses)
CASES = (("default", False, "full"), ("deterministic", True, None), ("deterministic, full asked", True, "full"))


def settings(quick: bool) -> dict:
    if quick:  # smoke run: small shapes, CVS over 3 modalities, the Trainer's two settings
        return {**sizes(True), "spaces": SPACES[:1], "cases": CASES[:2], "rounds": 2, "calls": 2}
    return {**sizes(False), "spaces": SPACES, "cases": CASES, "rounds": 6, "calls": 2}


def _switched(on: bool, step):
    """``step`` run with op determinism ``on`` (the flag is process-global: each case sets its own)."""
    from cvs_tf.training.determinism import op_determinism_enabled, set_op_determinism

    def call():
        before = op_determinism_enabled()
        set_op_determinism(on)
        try:
            return step()
        finally:
            set_op_determinism(before)

    return call


def measure(quick: bool) -> dict:
    import tensorflow as tf

    from cvs_tf.training.determinism import op_determinism
    from cvs_tf.training.distribute import effective_jit

    st = settings(quick)
    cases, setups = {}, {}
    for label, space, stage in st["spaces"]:
        for case, on, mode in st["cases"]:
            mode = mode or effective_jit(True, tf.distribute.get_strategy(), on)
            cfg = config(space, jit=mode, batch=st["batch"], dim=st["dim"], **st["extra"])
            with op_determinism(on):  # built and compiled in its own setting
                s = setups[(label, case)] = Setup(cfg, st["fs"], stage, mode)
            cases[f"{label} | {case}"] = _switched(on, s.step_constant)
    times, first = interleaved(cases, st["rounds"], st["calls"])
    results = []
    for label, _space, _stage in st["spaces"]:
        base = times[f"{label} | default"]
        for case, on, _mode in st["cases"]:
            t = times[f"{label} | {case}"]
            results.append({"space": label, "case": case, "determinism": on, "xla": setups[(label, case)].model.jit_mode,
                            "step": stats(t), "ratio": paired_ratio(t, base, st["calls"]),
                            "first_s": first[f"{label} | {case}"]})
    return {"results": results, "settings": st}


def row(r: dict) -> dict:
    return {
        "bench": NAME,
        "case": f"{r['space']} {r['case']} (XLA {r['xla']})",
        "step ms": fmt_ms(r["step"]),
        "vs default": f"{r['ratio']['median']:.2f}×",
    }


def markdown(m: dict, command: str, mach: dict) -> str:
    st = m["settings"]
    lines = [
        "## Deterministic training: step time with op determinism on / off (bench/determinism.py)",
        "",
        f"Command: `{command}` — measured {_dt.date.today().isoformat()} on: {machine_line(mach)}; {tf_line()}.",
        "",
        f"Data: XMedia-shaped **synthetic stand-in**, batch {st['batch']}, D = {st['dim']}; Keras' compiled "
        "train function on a constant in-memory batch; identically seeded models per space, each case "
        "setting the process-global op-determinism flag around its calls; "
        f"{st['rounds']} interleaved rounds × {st['calls']} steps after 2 warm-up steps per case. "
        "*XLA in effect* is the model's `jit_mode` after compiling.",
        "",
        "| space | case | op determinism | XLA in effect | step ms, median [min–max] | vs default, median [min–max] "
        "| first call s |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    for r in m["results"]:
        q = r["ratio"]
        lines.append(f"| {r['space']} | {r['case']} | {'on' if r['determinism'] else 'off'} | `{r['xla']}` | "
                     f"{fmt_ms(r['step'])} | {q['median']:.2f}× [{q['min']:.2f}–{q['max']:.2f}] | {r['first_s']:.0f} |")
    return "\n".join(lines)


def run(quick: bool = False, *, write_docs: bool | None = None) -> list[dict]:
    mach = machine()
    print(header(NAME, quick, "per row"), flush=True)
    m = measure(quick)
    for r in m["results"]:
        print(f"   {r['space']:<15} {r['case']:<26} XLA {r['xla']:<4} step {fmt_ms(r['step'])} ms, "
              f"{r['ratio']['median']:.2f}x default [{r['ratio']['min']:.2f}-{r['ratio']['max']:.2f}]", flush=True)
    if write_docs if write_docs is not None else not quick:
        path = write_section(NAME, markdown(m, f"python -m bench --only {NAME}", mach))
        print(f"   wrote {path.name} section {NAME}")
    return [row(r) for r in m["results"]]
