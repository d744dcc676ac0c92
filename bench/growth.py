"""Growth with modalities (thesis Fig. 27): ms per training iteration for n = 2..5, CVS from scratch vs M-CVS stage n.

On the XMedia-shaped synthetic stand-in (modalities added in M-CVS's XMedia order image, text,
video, audio, 3d; full dims, batch 128, D = 512, default XLA mode), for each n:

* **CVS**: a CVS+attention space over the first n modalities, trained from scratch: n branches
  and C(n,2) attention blocks, all trainable, C(n,2) pairs in the loss;
* **M-CVS**: stage n-1 of the 5-modality M-CVS: the n-th modality's branch and its n-1 new
  blocks train; the earlier branches, blocks and the classifier are frozen (forward only);

timed interleaved (Keras' train function on a constant batch). For n = 5 it also times the same
M-CVS stage with the frozen parts made trainable again: the difference is what the backward of
the frozen parts would cost, i.e. what freezing saves. The full run writes the table and a PNG
(``docs/performance_growth.png``).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from bench import DOCS_PERFORMANCE, machine, machine_line, write_section
from bench.common import fmt_ms, header, interleaved, stats, tf_line, total_flops
from bench.flops import forward_products, step_products
from bench.standin import setup, sizes

NAME = "growth"
ORDER = ("image", "text", "video", "audio", "3d")
PNG = DOCS_PERFORMANCE.with_name("performance_growth.png")


def settings(quick: bool) -> dict:
    shapes = {k: v for k, v in sizes(quick).items() if k != "extra"}
    if quick:
        return {**shapes, "ns": (3,), "rounds": 2, "calls": 2}
    return {**shapes, "ns": (2, 3, 4, 5), "rounds": 4, "calls": 4}


def unfrozen(base_setup, mode):
    """A second Setup of the same space and stage with the frozen layers it uses made trainable:
    the earlier branches, the classifier (and an RVS reference); earlier blocks are not in use."""
    import keras

    from bench.standin import Setup

    s = Setup(base_setup.cfg, base_setup.fs, base_setup.stage, mode, seed=1)
    m = s.model
    needed = {x for p in m.active_pairs() for x in p}
    for name in needed:
        m.branches[name].trainable = True
    m.classifier.trainable = True
    if m.shared_reference is not None:
        m.shared_reference.trainable = True
    m._make_trackers()
    m.compile(optimizer=keras.optimizers.Adam(s.cfg.train.lr), jit_compile=mode)
    m.make_train_function()
    return s


def measure(quick: bool) -> dict:
    from cvs_tf.models.base import resolve_jit

    st = settings(quick)
    mode = resolve_jit(True)
    kw = {"fs": st["fs"], "batch": st["batch"], "dim": st["dim"]}
    cases, info = {}, {}
    for n in st["ns"]:
        cvs = setup("cvs", 0, mode, modalities=None if n == 5 else list(ORDER[:n]), **kw)
        mcvs = setup("mcvs", n - 2, mode, **kw)
        cases[f"cvs{n}"], cases[f"mcvs{n}"] = cvs.step_constant, mcvs.step_constant
        info[n] = {"cvs": cvs, "mcvs": mcvs}
    n_max = max(st["ns"])
    free = unfrozen(info[n_max]["mcvs"], mode)
    cases["unfrozen"] = free.step_constant
    times, first = interleaved(cases, st["rounds"], st["calls"])
    rows = []
    for n in st["ns"]:
        c, m = info[n]["cvs"].model, info[n]["mcvs"].model
        rows.append({
            "n": n, "cvs": stats(times[f"cvs{n}"]), "mcvs": stats(times[f"mcvs{n}"]),
            "cvs_gflop": total_flops(step_products(c, st["batch"])) / 1e9,
            "mcvs_gflop": total_flops(step_products(m, st["batch"])) / 1e9,
            "frozen_fwd_gflop": total_flops(forward_products(m, st["batch"])) / 1e9,
            "cvs_blocks": len(c.active_pairs()), "mcvs_blocks": len(m.active_pairs()),
            "cvs_params": c.parameter_report()["trainable_params"],
            "mcvs_params": m.parameter_report()["trainable_params"],
        })
    last = rows[-1]
    frozen = {"t_frozen": last["mcvs"], "t_unfrozen": stats(times["unfrozen"]),
              "gflop_frozen": last["mcvs_gflop"],
              "gflop_unfrozen": total_flops(step_products(free.model, st["batch"])) / 1e9}
    return {"rows": rows, "frozen": frozen, "mode": mode, "settings": st, "first": first}


def plot(rows: list[dict], path: Path, mode: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r["n"] for r in rows]
    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=120)
    for key, label, marker in (("cvs", "CVS (retrained from scratch)", "o"), ("mcvs", "M-CVS (new parts only)", "s")):
        med = [r[key]["median"] * 1e3 for r in rows]
        lo = [med[i] - r[key]["min"] * 1e3 for i, r in enumerate(rows)]
        hi = [r[key]["max"] * 1e3 - med[i] for i, r in enumerate(rows)]
        ax.errorbar(ns, med, yerr=[lo, hi], marker=marker, capsize=3, label=label)
    ax.set_xticks(ns)
    ax.set_xlabel("number of modalities n")
    ax.set_ylabel("ms per training iteration (median, min–max)")
    ax.set_title(f"Growth with modalities (synthetic stand-in, XLA {mode})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def markdown(m: dict, command: str, mach: dict, png: Path) -> str:
    st, fr = m["settings"], m["frozen"]
    lines = [
        "## Growth with modalities, CVS vs M-CVS (thesis Fig. 27; bench/growth.py)",
        "",
        f"Command: `{command}` — measured {_dt.date.today().isoformat()} on: {machine_line(mach)}; {tf_line()}.",
        "",
        f"XMedia-shaped **synthetic stand-in**, modalities added in the order {', '.join(ORDER)}; batch "
        f"{st['batch']}, D = {st['dim']}, XLA mode `{m['mode']}`; {st['rounds']} interleaved rounds × "
        f"{st['calls']} steps per case. GFLOP = analytic matmul FLOPs of one step (frozen parts: forward only).",
        "",
        "| n | CVS ms/iter | M-CVS ms/iter | M-CVS / CVS | pairs trained CVS / M-CVS | trainable params CVS / M-CVS "
        "| GFLOP CVS / M-CVS (of which frozen forward) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in m["rows"]:
        lines.append(
            f"| {r['n']} | {fmt_ms(r['cvs'])} | {fmt_ms(r['mcvs'])} | {r['mcvs']['median'] / r['cvs']['median']:.2f} "
            f"| {r['cvs_blocks']} / {r['mcvs_blocks']} | {r['cvs_params'] / 1e6:.1f} M / {r['mcvs_params'] / 1e6:.1f} M "
            f"| {r['cvs_gflop']:.2f} / {r['mcvs_gflop']:.2f} ({r['frozen_fwd_gflop']:.2f}) |")
    d_t = fr["t_unfrozen"]["median"] - fr["t_frozen"]["median"]
    d_f = fr["gflop_unfrozen"] - fr["gflop_frozen"]
    rate = fr["gflop_frozen"] / fr["t_frozen"]["median"]
    lines += [
        "",
        f"![ms per iteration against modalities]({png.name})",
        "",
        f"Frozen parts cost only their forward pass: at n = {m['rows'][-1]['n']}, making the frozen parts "
        f"trainable again (same stage, same pairs) takes the step from {fmt_ms(fr['t_frozen'])} ms to "
        f"{fmt_ms(fr['t_unfrozen'])} ms and its matmul work from {fr['gflop_frozen']:.2f} to "
        f"{fr['gflop_unfrozen']:.2f} GFLOP (+{d_f:.2f} GFLOP of backward: weight gradients of the earlier "
        f"branches and the classifier, input gradients of the earlier projections); at the frozen step's "
        f"rate ({rate:.1f} GFLOP/s) that backward would take ≈ {d_f / rate * 1e3:.0f} ms, measured "
        f"+{d_t * 1e3:.0f} ms. Keras 3 leaves a frozen layer's TF variables `trainable=True`, so the "
        "tape still watches them, but `train_step` asks for gradients of `trainable_variables` only and "
        "the unused backward ops are pruned from the compiled graph (and by XLA), so none of it runs.",
    ]
    return "\n".join(lines)


def run(quick: bool = False, *, write_docs: bool | None = None) -> list[dict]:
    mach = machine()
    print(header(NAME, quick, "default mode (see rows)"), flush=True)
    m = measure(quick)
    out = []
    for r in m["rows"]:
        ratio = r["mcvs"]["median"] / r["cvs"]["median"]
        print(f"   n={r['n']}: CVS {fmt_ms(r['cvs'])} ms ({r['cvs_gflop']:.2f} GFLOP), M-CVS {fmt_ms(r['mcvs'])} ms "
              f"({r['mcvs_gflop']:.2f} GFLOP) -> {ratio:.2f}", flush=True)
        out.append({"bench": NAME, "case": f"n={r['n']} XLA={m['mode']}", "step ms": fmt_ms(r["mcvs"]),
                    "CVS ms": fmt_ms(r["cvs"]), "M-CVS/CVS": f"{ratio:.2f}"})
    fr = m["frozen"]
    print(f"   frozen parts made trainable: {fmt_ms(fr['t_frozen'])} -> {fmt_ms(fr['t_unfrozen'])} ms "
          f"({fr['gflop_frozen']:.2f} -> {fr['gflop_unfrozen']:.2f} GFLOP)", flush=True)
    if write_docs if write_docs is not None else not quick:
        png = plot(m["rows"], PNG, m["mode"])
        path = write_section(NAME, markdown(m, "python -m bench", mach, png))
        print(f"   wrote {path.name} section {NAME} and {png.name}")
    return out
