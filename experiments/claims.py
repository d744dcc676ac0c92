"""The thesis's claims decided on our per-seed numbers (paired differences, two standard errors)."""

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


def _close(c, ma: float, mb: float, sd_txt: str) -> tuple[str, str]:
    gap = abs(ma - mb) / mb if mb else float("inf")
    verdict = "holds" if gap <= c.tolerance else "does not hold"
    return verdict, (f"{c.a} {ma:.3f} vs {c.b} {mb:.3f}: gap {100 * gap:.1f}% of {c.b} "
                     f"(rule: within {100 * c.tolerance:.0f}%); difference {fmt_signed(ma - mb)}{sd_txt}")


def check_claims(ctx, overall: dict[str, list[float]], data) -> tuple[list[str], list[dict]]:
    """Decide each thesis claim on our per-seed overall means; Markdown lines and JSON records.

    ``greater`` (a beats b) is decided on the paired per-seed differences: it **holds** when their
    mean is positive by more than two standard errors, **does not hold** when it is negative by
    more than two, and is **not resolved** in between (the seeds disagree more than the gap).
    With one seed there is no noise estimate and the sign decides, which the line says.
    ``close`` holds when |a − b| is within ``tolerance`` of b.
    """
    lines, recs = [], []
    for c in ctx.exp.claims:
        a, b = np.asarray(overall[c.a]), np.asarray(overall[c.b])
        ma, mb = float(a.mean()), float(b.mean())
        diff = a - b
        sd_txt = f" ± {float(diff.std(ddof=1)):.3f}" if len(diff) > 1 else ""
        verdict, detail = _greater(c, diff, ma, mb, sd_txt) if c.kind == "greater" else _close(c, ma, mb, sd_txt)
        where = " (on a synthetic stand-in: says nothing about the thesis)" if data.synthetic else ""
        lines.append(f"- {c.text}: **{verdict}** on {data.spec.label}{where} — {detail}.")
        recs.append({"claim": c.text, "kind": c.kind, "a": c.a, "b": c.b, "dataset": data.spec.name,
                     "verdict": verdict, "holds": verdict == "holds", "a_mean": ma, "b_mean": mb,
                     "a_per_seed": a.tolist(), "b_per_seed": b.tolist(),
                     "tolerance": c.tolerance if c.kind == "close" else None})
    return lines, recs


__all__ = ["check_claims"]
