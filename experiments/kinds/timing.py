"""Kind ``timing`` (Figure 27): ms per training iteration against the number of modalities, CVS from scratch vs M-CVS.

Measured with the library Trainer and a Keras callback: the median wall time between
consecutive ``on_train_batch_end`` calls, after the first epoch(s) of each stage (which include
tracing/compilation). Cross-checked on the same models with isolated training steps (the compiled train function)
on one constant batch, timed in interleaved rounds so that every case sees the same load.
"""

from __future__ import annotations

import time

import numpy as np

from experiments.context import Context
from experiments.kinds import Kind, register_kind
from experiments.report import (
    base_record,
    figure_path,
    fmt,
    fmt_mean_std,
    header_markdown,
    markdown_table,
    mean_sd,
    outputs,
)
from experiments.schema import VariantSpec

DEFAULT_ORDER = ["image", "text", "video", "audio", "3d"]


class IterationTimer:
    """Keras callback recording wall time between consecutive training batches, per (stage, epoch)."""

    def __new__(cls):
        import keras

        class _Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.samples = []  # (stage, epoch, seconds)
                self._last = None
                self._epoch = 0

            def on_epoch_begin(self, epoch, logs=None):
                self._epoch, self._last = epoch, None

            def on_train_batch_end(self, batch, logs=None):
                now = time.perf_counter()
                if self._last is not None:
                    self.samples.append((int(self.model.current_stage), self._epoch, now - self._last))
                self._last = now

            def per_stage_ms(self, skip_epochs: int = 1) -> dict[int, list[float]]:
                out: dict[int, list[float]] = {}
                for stage, epoch, dt in self.samples:
                    if epoch >= skip_epochs:
                        out.setdefault(stage, []).append(1000.0 * dt)
                return out

        return _Timer()


def _variants(ctx: Context, order: list[str]):
    """The CVS variant over the first n modalities (n = 2 …) and the M-CVS variant adding one per stage."""
    o = ctx.exp.options
    base = {v.name: v for v in ctx.exp.variants}
    cvs, mcvs = base[o.get("cvs_variant", "CVS")], base[o.get("mcvs_variant", "M-CVS")]
    cvs_n = {n: VariantSpec(f"{cvs.name} n={n}", {**cvs.model, "modalities": order[:n]}, cvs.loss, cvs.train)
             for n in range(2, len(order) + 1)}
    stages = [order[:2]] + [[m] for m in order[2:]]
    return cvs_n, VariantSpec(mcvs.name, {**mcvs.model, "stages": stages}, mcvs.loss, mcvs.train)


def _trainer_ms(ctx: Context, data, order: list[str], skip: int) -> dict:
    """``{"cvs": {n: [median ms per seed]}, "mcvs": {n: [...]}}`` measured in Trainer runs."""
    cvs_n, mcvs = _variants(ctx, order)
    results = {"cvs": {}, "mcvs": {}}
    for seed in ctx.seeds:
        for n, v in cvs_n.items():
            timer = IterationTimer()
            ctx.train(data, v, seed, callbacks=[timer])
            ms = timer.per_stage_ms(skip).get(0, [])
            results["cvs"].setdefault(n, []).append(float(np.median(ms)) if ms else float("nan"))
        timer = IterationTimer()
        ctx.train(data, mcvs, seed, callbacks=[timer])
        for stage, ms in timer.per_stage_ms(skip).items():
            results["mcvs"].setdefault(stage + 2, []).append(float(np.median(ms)))
    return results


class ConstantStep:
    """One compiled training step of a model at one stage, on a fixed batch drawn from the training split."""

    def __init__(self, config, fs, stage: int, seed: int = 0):
        import keras
        import tensorflow as tf

        from cvs_tf.models import build_model

        keras.utils.set_random_seed(seed)
        self.model = build_model(config, fs)
        self.model.set_stage(stage, recompile=False)
        self.model.compile(optimizer=keras.optimizers.Adam(config.train.lr), jit_compile=config.train.jit)
        mods = sorted({m for pair in self.model.active_pairs() for m in pair})
        b = min([config.train.batch_size] + [fs.count(m, "train") for m in mods])
        rng = np.random.default_rng(seed)
        self.x, self.y = {}, {}
        for m in mods:
            rows = np.sort(rng.choice(fs.count(m, "train"), size=b, replace=False))
            self.x[m] = tf.constant(np.asarray(fs.x(m, "train"))[rows], tf.float32)
            self.y[m] = tf.constant(np.asarray(fs.y(m, "train"))[rows])
        self.model.make_train_function()

    def __call__(self) -> dict:
        """One step; its logs as numbers (which waits for the step to finish)."""
        logs = self.model.train_function([(self.x, self.y)])
        return {k: float(v) for k, v in logs.items()}


def interleaved_ms(cases: dict, rounds: int, calls: int, warmup: int = 2) -> dict[str, float]:
    """Median ms per call of each case, timed in turn (the order rotating each round) after a warm-up."""
    for step in cases.values():
        for _ in range(1 + warmup):  # the first call traces and compiles
            step()
    times = {name: [] for name in cases}
    names = list(cases)
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            for _ in range(calls):
                t0 = time.perf_counter()
                cases[name]()
                times[name].append(1000.0 * (time.perf_counter() - t0))
    return {name: float(np.median(t)) for name, t in times.items()}


def isolated_steps(ctx: Context, data, order: list[str]) -> tuple[list[str], list[dict]]:
    """The cross-check: isolated steps of the same CVS and M-CVS stages (seed 0); Markdown and rows."""
    cvs_n, mcvs = _variants(ctx, order)
    ns = list(cvs_n)[-1:] if ctx.quick else list(cvs_n)
    cases = {}
    for n in ns:
        cases[f"cvs{n}"] = ConstantStep(ctx.run_config(cvs_n[n], data, 0), data.featureset(), 0)
        cases[f"mcvs{n}"] = ConstantStep(ctx.run_config(mcvs, data, 0), data.featureset(), n - 2)
    rounds, calls = (2, 2) if ctx.quick else (4, 4)
    ms = interleaved_ms(cases, rounds, calls)
    rows = [{"n": n, "cvs_ms": ms[f"cvs{n}"], "mcvs_ms": ms[f"mcvs{n}"]} for n in ns]
    table = [[str(r["n"]), f"{r['cvs_ms']:.1f}", f"{r['mcvs_ms']:.1f}", fmt(r["mcvs_ms"] / r["cvs_ms"], 2)] for r in rows]
    return ["Cross-check: isolated training steps of the same models on one constant training batch "
            f"(median of {rounds} interleaved rounds × {calls} steps per case, after a warm-up; seed 0):", "",
            markdown_table(["n", "CVS (ms/iteration)", "M-CVS (ms/iteration)", "M-CVS / CVS"], table), ""], rows


def _plot(ctx: Context, data, order: list[str], rows: list[dict]):
    import matplotlib.pyplot as plt

    from experiments.plots import save

    ns = [r["n"] for r in rows]
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    for key, name, color in (("cvs_ms_median", "CVS (retrained from scratch)", "#4c72b0"),
                             ("mcvs_ms_median", "M-CVS (only the new branch trains)", "#dd8452")):
        ax.plot(ns, [r[key] for r in rows], "-o", color=color, label=name)
    ax.set_xticks(ns, [f"{n}\n+{order[n - 1]}" if n > 2 else f"2\n{order[0]}+{order[1]}" for n in ns])
    ax.set_xlabel("number of modalities")
    ax.set_ylabel("ms per training iteration")
    ax.set_title(f"{ctx.exp.title}\n{data.spec.label} ({data.label})", fontsize=9)
    ax.legend(fontsize=8)
    return save(fig, figure_path(ctx))


def run_timing(ctx: Context) -> dict:
    """Figure 27: the Trainer measurement over seeds, the isolated-step cross-check, a table and a plot."""
    exp, o = ctx.exp, ctx.exp.options
    data = ctx.resolve(exp.datasets[0])
    order = o.get("modalities", DEFAULT_ORDER)
    skip = int(o.get("skip_epochs", 1))
    results = _trainer_ms(ctx, data, order, skip)
    rows, table = [], []
    for n in range(2, len(order) + 1):
        c, m = np.array(results["cvs"].get(n, [np.nan])), np.array(results["mcvs"].get(n, [np.nan]))
        (cm, cs), (mm, ms) = mean_sd(c), mean_sd(m)
        rows.append({"experiment": exp.name, "n": n, "added": order[n - 1], "cvs_ms_median": cm, "cvs_ms_std": cs,
                     "mcvs_ms_median": mm, "mcvs_ms_std": ms, "cvs_per_seed": ";".join(f"{x:.2f}" for x in c),
                     "mcvs_per_seed": ";".join(f"{x:.2f}" for x in m)})
        table.append([str(n), order[n - 1], fmt_mean_std(cm, cs, 1), fmt_mean_std(mm, ms, 1), fmt(mm / cm, 2)])
    md = header_markdown(ctx, [data], [
        "measured here with the library Trainer: the median wall time between consecutive training batches "
        f"(Keras callback), after the first {skip} epoch(s) of each stage (tracing/compilation); ± over seeds",
        "CVS n: a CVS trained from scratch on the first n modalities; M-CVS n: stage n−1 of one M-CVS run "
        f"(stage 1 = {order[0]}+{order[1]}, then +{', +'.join(order[2:])}), where only the new branch and its blocks train",
        "the machine is shared (2 CPU cores, other jobs running): absolute times are noisy, compare within a row"])
    md += [markdown_table(["n", "added modality", "CVS from scratch (ms/iteration)", "M-CVS stage (ms/iteration)",
                           "M-CVS / CVS"], table), ""]
    check_md, check_rows = isolated_steps(ctx, data, order) if o.get("cross_check", True) else ([], [])
    md += check_md
    path = _plot(ctx, data, order, rows)
    md += [f"![{exp.name}]({path.name})", ""]
    record = {**base_record(ctx, [data]), "rows": rows, "order": order, "isolated_steps": check_rows}
    return outputs(md, rows, record)


KIND = register_kind(Kind("timing", run_timing, figure=True))
