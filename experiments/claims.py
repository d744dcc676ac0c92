"""The thesis's claims decided on our per-seed numbers (paired differences, two standard errors, or every seed)."""

from __future__ import annotations

import math

import numpy as np

from experiments.report import fmt_signed


def _greater(c, diff: np.ndarray, ma: float, mb: float, sd_txt: str) -> tuple[str, str]:
    n = len(diff)
    d = float(diff.mean())
    if n > 1:
        se = float(diff.std(ddof=1)) / math.sqrt(n)
        verdict = "holds" if d > 2 * se else "does not hold" if d < -2 * se else "not resolved"
        why = f"2 standard errors = {2 * se:.3f}"
    else:
        verdict, why = ("holds" if d > 0 else "does not hold"), "one seed: no noise estimate"
    return verdict, (f"{c.a} {ma:.3f} vs {c.b} {mb:.3f}: paired difference {fmt_signed(d)}{sd_txt} over {n} seed(s) "
                     f"({why}); {c.a} is higher in {int((diff > 0).sum())}/{n} seeds")


def _every_seed(c, diff: np.ndarray, seeds: list, ma: float, mb: float, sd_txt: str) -> tuple[str, str]:
    lower = [s for s, d in zip(seeds, diff) if not d > 0]
    verdict = "holds" if not lower else "does not hold"
    where = "in every seed" if not lower else f"not in seed(s) {', '.join(map(str, lower))}"
    return verdict, (f"{c.a} {ma:.3f} vs {c.b} {mb:.3f}: {c.a} is higher {where} "
                     f"({len(diff) - len(lower)}/{len(diff)}; per-seed differences "
                     f"{', '.join(fmt_signed(float(d)) for d in diff)}); mean difference {fmt_signed(float(diff.mean()))}"
                     f"{sd_txt}")


def _close(c, ma: float, mb: float, sd_txt: str) -> tuple[str, str]:
    gap = abs(ma - mb) / mb if mb else float("inf")
    verdict = "holds" if gap <= c.tolerance else "does not hold"
    return verdict, (f"{c.a} {ma:.3f} vs {c.b} {mb:.3f}: gap {100 * gap:.1f}% of {c.b} "
                     f"(rule: within {100 * c.tolerance:.0f}%); difference {fmt_signed(ma - mb)}{sd_txt}")


def _by_seed(values) -> dict:
    """Per-seed values as ``{seed: value}`` (a list is taken as seeds 0, 1, …)."""
    return dict(values) if isinstance(values, dict) else dict(enumerate(values))


def decide(c, per_a, per_b) -> tuple[str, str, dict]:
    """The verdict on claim ``c``, its detail text and the paired numbers, over the seeds both variants finished."""
    a_seeds, b_seeds = _by_seed(per_a), _by_seed(per_b)
    seeds = [s for s in a_seeds if s in b_seeds]
    if not seeds:
        missing = c.a if not a_seeds else c.b
        return "not decided", f"{missing} has no finished run to compare", {"seeds": []}
    a = np.asarray([a_seeds[s] for s in seeds], dtype=float)
    b = np.asarray([b_seeds[s] for s in seeds], dtype=float)
    ma, mb, diff = float(a.mean()), float(b.mean()), a - b
    sd_txt = f" ± {float(diff.std(ddof=1)):.3f}" if len(diff) > 1 else ""
    if c.kind == "greater":
        verdict, detail = _greater(c, diff, ma, mb, sd_txt)
    elif c.kind == "greater_every_seed":
        verdict, detail = _every_seed(c, diff, seeds, ma, mb, sd_txt)
    else:
        verdict, detail = _close(c, ma, mb, sd_txt)
    return verdict, detail, {"seeds": seeds, "a_mean": ma, "b_mean": mb, "a_per_seed": a.tolist(),
                             "b_per_seed": b.tolist()}


def check_claims(ctx, overall: dict, data) -> tuple[list[str], list[dict]]:
    """Decide each thesis claim on our per-seed overall means; Markdown lines and JSON records.

    ``overall`` maps a variant to its per-seed values (a list, or ``{seed: value}``); a claim is
    decided on the seeds both of its variants finished. ``greater`` (a beats b) is decided on the
    paired per-seed differences: it **holds** when their mean is positive by more than two
    standard errors, **does not hold** when it is negative by more than two, and is **not
    resolved** in between (the seeds disagree more than the gap). With one seed there is no
    noise estimate and the sign decides, which the line says. ``greater_every_seed`` holds when
    a is higher in every seed. ``close`` holds when |a − b| is within ``tolerance`` of b.
    """
    lines, recs = [], []
    for c in ctx.exp.claims:
        verdict, detail, nums = decide(c, overall.get(c.a, {}), overall.get(c.b, {}))
        where = " (on a synthetic stand-in: says nothing about the thesis)" if data.synthetic else ""
        lines.append(f"- {c.text}: **{verdict}** on {data.spec.label}{where} — {detail}.")
        recs.append({"claim": c.text, "kind": c.kind, "a": c.a, "b": c.b, "dataset": data.spec.name,
                     "verdict": verdict, "holds": verdict == "holds", **nums,
                     "tolerance": c.tolerance if c.kind == "close" else None})
    return lines, recs


__all__ = ["check_claims", "decide"]
