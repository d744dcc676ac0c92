"""Benchmark of cvs_tf's map_at_k against a DSCMR/SDML-style reference loop and against the unavoidable work.

For XMedia-sized and XMediaNet-sized test embeddings (D = 512, all 20 ordered pairs of the five
modalities) and K = 50 and K = all, one run measures on the same inputs:

* **ours**: ``cvs_tf.evaluation.map_at_k`` over the 20 pairs;
* **reference**: the evaluation loop of the public DSCMR / SDML code (scipy ``cdist(...,
  "cosine")``, ``argsort``, then a Python loop over queries and ranks), with separate query and
  retrieval labels and a stable ``argsort`` so that ties follow the same rule as ours;
* **unavoidable work**: one float64 similarity matmul of the pre-normalised embeddings plus one
  sort per query row (``argsort`` for K = all, ``argpartition`` for K = 50), in the same query
  blocks as ours, with nothing else.

It reports median [min–max] seconds over repeats (ours and the unavoidable work interleaved, so
they see the same machine load), the speed-up over the reference, ours / unavoidable, the
largest absolute difference of per-query AP against the reference, and tracemalloc peak memory
of one call on the largest pair. The full run writes its section of docs/performance.md.
"""

from __future__ import annotations

import datetime as _dt

import numpy as np
from scipy.spatial.distance import cdist

from bench import (
    fmt_seconds,
    load_average,
    machine,
    machine_line,
    peak_memory,
    summary,
    timed,
    write_section,
)
from cvs_tf.evaluation.metrics import DEFAULT_CHUNK_ENTRIES, _l2_normalize, map_at_k

NAME = "eval_map"
DIM = 512
MODALITIES = ("image", "text", "audio", "video", "3d")
SIZES = {
    # test items per modality, number of classes (design.md §7)
    "XMedia": ((1000, 1000, 200, 100, 100), 20),
    "XMediaNet": ((8000, 8000, 2000, 2000, 400), 200),
}
KS = (50, None)
#: BLAS threads for ours and the unavoidable work. The reference (cdist + a Python loop) runs on
#: one core, so one thread compares like with like; it is also faster than two on a loaded
#: 2-core machine (OpenBLAS threads contend with other processes).
BLAS_THREADS = 1
MAX_ABS_DIFF = 1e-9
TARGET_SPEEDUP = 10.0          # at XMedia size, K = all
TARGET_OVER_UNAVOIDABLE = 1.5
#: At XMediaNet size the reference loop takes ~6 min for the two K cases on every query; it runs
#: on every 4th query row (its cost is linear in the number of queries) to keep `make bench`
#: under 15 minutes, and the speed-up compares it with ours on the same queries.
REF_STRIDE_XMEDIANET = 4


def make_embeddings(counts, n_classes: int, seed: int = 0) -> dict:
    """Class-conditional float32 embeddings (a model's output dtype) and int labels per modality."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_classes, DIM))
    out = {}
    for m, n in zip(MODALITIES, counts):
        y = rng.integers(0, n_classes, size=n)
        x = 0.25 * centers[y] + rng.normal(size=(n, DIM))
        out[m] = (x.astype(np.float32), y)
    return out


def pairs():
    return [(q, r) for q in MODALITIES for r in MODALITIES if q != r]


def reference_map(image, text, label_i, label_t, k=0):
    """The DSCMR/SDML ``fx_calc_map_label`` loop, with separate query/retrieval labels.

    Same structure as the public code: cosine distance matrix, argsort per row, then for every
    query a Python loop over the first k ranks. ``argsort(kind="stable")`` instead of the default
    quicksort makes equal distances keep the lower index first (our tie rule).
    """
    dist = cdist(image, text, "cosine")
    ord_ = dist.argsort(kind="stable")
    numcases = dist.shape[0]
    if k == 0:
        k = dist.shape[1]
    k = min(k, dist.shape[1])
    res = []
    for i in range(numcases):
        order = ord_[i]
        p = 0.0
        r = 0.0
        for j in range(k):
            if label_i[i] == label_t[order[j]]:
                r += 1
                p += r / (j + 1)
        res += [p / r] if r > 0 else [0]
    return np.mean(res), np.asarray(res, dtype=np.float64)


def run_ours(data, k, stride: int = 1):
    """Per-query APs of ours for all pairs; ``stride`` > 1 keeps every stride-th query (full gallery)."""
    return {(q, r): map_at_k(data[q][0][::stride], data[r][0], data[q][1][::stride], data[r][1], k,
                             return_per_query=True)[1]
            for q, r in pairs()}


def run_reference(data, k, stride: int = 1):
    """Per-query APs of the reference loop, on every ``stride``-th query of each pair (full gallery)."""
    return {(q, r): reference_map(data[q][0][::stride], data[r][0], data[q][1][::stride], data[r][1],
                                  0 if k is None else k)[1]
            for q, r in pairs()}


def run_unavoidable(normed, k) -> tuple[float, float]:
    """(matmul seconds, sort seconds): the similarity product and one sort / top-k per query row."""
    import time

    t_mm = t_sort = 0.0
    for q, r in pairs():
        qn, rn = normed[q], normed[r]
        n = rn.shape[0]
        step = max(1, DEFAULT_CHUNK_ENTRIES // n)
        for a in range(0, qn.shape[0], step):
            t0 = time.perf_counter()
            s = qn[a:a + step] @ rn.T
            t1 = time.perf_counter()
            if k is None or k >= n:
                np.argsort(s, axis=1)
            else:
                np.argpartition(s, n - k, axis=1)
            t2 = time.perf_counter()
            t_mm += t1 - t0
            t_sort += t2 - t1
    return t_mm, t_sort


def largest_pair(data: dict) -> tuple[str, str]:
    return max(pairs(), key=lambda p: len(data[p[0]][0]) * len(data[p[1]][0]))


def reference_peak(data: dict) -> int:
    """tracemalloc peak of the reference on the largest pair: its full distance matrix and argsort.

    The peak does not depend on K (the loop allocates only scalars), so it is measured once with
    K = 1, which keeps tracemalloc's per-allocation overhead off a long Python loop.
    """
    (xq, yq), (xr, yr) = (data[m] for m in largest_pair(data))
    return peak_memory(reference_map, xq, xr, yq, yr, 1)[0]


def bench_case(size: str, data: dict, k, repeats: int, ref_repeats: int, peak_ref: int,
               ref_stride: int = 1) -> dict:
    """One (size, K) case. With ``ref_stride`` > 1 the reference loop (whose cost is one Python
    iteration per query and rank) runs on every ref_stride-th query row of each pair against the
    full gallery, and the speed-up compares it with ours on exactly those queries, timed
    interleaved; ours and the unavoidable work are always timed on every query."""
    normed = {m: _l2_normalize(x) for m, (x, _) in data.items()}
    ours_t, unav_t, mm_t, sort_t = [], [], [], []
    ours = None
    for rep in range(repeats):                       # interleaved, alternating order
        steps = ["ours", "unavoidable"] if rep % 2 == 0 else ["unavoidable", "ours"]
        for step in steps:
            if step == "ours":
                t, ours = timed(run_ours, data, k)
                ours_t.append(t)
            else:
                t, (mm, so) = timed(run_unavoidable, normed, k)
                unav_t.append(t)
                mm_t.append(mm)
                sort_t.append(so)
    ref_t, ref, sub_t = [], None, []
    for _ in range(ref_repeats):
        t, ref = timed(run_reference, data, k, ref_stride)
        ref_t.append(t)
        if ref_stride > 1:
            sub_t.append(timed(run_ours, data, k, ref_stride)[0])
    diff = max(float(np.max(np.abs(ours[p][::ref_stride] - ref[p]))) for p in pairs())
    big = largest_pair(data)
    (xq, yq), (xr, yr) = data[big[0]], data[big[1]]
    peak_ours, _ = peak_memory(map_at_k, xq, xr, yq, yr, k)
    o, u, rf = summary(ours_t), summary(unav_t), summary(ref_t)
    o_same = summary(sub_t) if ref_stride > 1 else o      # ours on the reference's queries
    return {
        "size": size, "k": "all" if k is None else k, "ours": o, "unavoidable": u, "reference": rf,
        "matmul_s": float(np.median(mm_t)), "sort_s": float(np.median(sort_t)),
        "speedup": rf["median"] / o_same["median"], "over_unavoidable": o["median"] / u["median"],
        "ref_stride": ref_stride, "ours_on_ref_queries": o_same,
        "ref_over_unavoidable": rf["median"] * ref_stride / u["median"],
        "max_abs_diff": diff, "peak_ours": peak_ours, "peak_ref": peak_ref, "largest_pair": big,
        "map": float(np.mean([ours[p].mean() for p in pairs()])),
        "queries": sum(len(data[q][0]) for q, _ in pairs()),
    }


def check(res: dict) -> list[str]:
    """Targets missed by one case, as sentences (empty when all are met)."""
    miss = []
    if res["max_abs_diff"] > MAX_ABS_DIFF:
        miss.append(f"largest |ΔAP| {res['max_abs_diff']:.2g} exceeds {MAX_ABS_DIFF:g}")
    if res["size"] == "XMedia" and res["k"] == "all" and res["speedup"] < TARGET_SPEEDUP:
        bound = res["ref_over_unavoidable"]
        why = (f"the reference itself costs only {bound:.1f}× the unavoidable work here, so even a "
               "method costing exactly one float64 similarity matmul plus one argsort per row would "
               f"be {bound:.1f}× faster, not {TARGET_SPEEDUP:g}×, on this machine" if bound < TARGET_SPEEDUP else
               f"the reference costs {bound:.1f}× the unavoidable work, so the shortfall is our "
               "overhead (see ours / unavoidable)")
        miss.append(f"speed-up {res['speedup']:.1f}× is below {TARGET_SPEEDUP:g}×: {why}")
    if res["over_unavoidable"] > TARGET_OVER_UNAVOIDABLE:
        over = res["ours"]["median"] - res["unavoidable"]["median"]
        miss.append(
            f"ours/unavoidable {res['over_unavoidable']:.2f} exceeds {TARGET_OVER_UNAVOIDABLE:g}: "
            f"{over:.3g} s on top of matmul {res['matmul_s']:.3g} s + sort {res['sort_s']:.3g} s "
            "(normalisation, label gather, tie checks, AP sums)"
        )
    return miss


def row(res: dict) -> dict:
    miss = check(res)
    return {
        "bench": NAME,
        "case": f"{res['size']} K={res['k']}",
        "ours s": fmt_seconds(res["ours"]),
        "unavoidable s": fmt_seconds(res["unavoidable"]),
        "reference s": fmt_seconds(res["reference"]),
        "speed-up": f"{res['speedup']:.1f}×",
        "ours/unavoidable": f"{res['over_unavoidable']:.2f}",
        "max|ΔAP|": f"{res['max_abs_diff']:.1e}",
        "peak MiB ours/ref": f"{res['peak_ours'] / 2**20:.0f}/{res['peak_ref'] / 2**20:.0f}",
        "targets": "met" if not miss else "MISSED",
    }


def ref_note(res: dict) -> str:
    """Marks a reference time measured on a query subset, with ours on the same queries."""
    if res["ref_stride"] == 1:
        return ""
    return f"¹ (ours on the same queries: {fmt_seconds(res['ours_on_ref_queries'])})"


def markdown(results: list[dict], command: str, mach: dict, repeats: dict) -> str:
    lines = [
        "## Retrieval evaluation: `map_at_k` (bench/eval_map.py)",
        "",
        f"Command: `{command}` — measured {_dt.date.today().isoformat()} on: {machine_line(mach)}.",
        "",
        "Inputs: seeded class-conditional float32 embeddings, D = 512, single labels; XMedia size = "
        "1000/1000/200/100/100 test items (image/text/audio/video/3D), 20 classes; XMediaNet size = "
        "8000/8000/2000/2000/400, 200 classes. Each time covers all 20 ordered modality pairs. "
        f"Repeats: {repeats}.",
        "",
        "| case | ours s | unavoidable s (matmul + sort) | reference s | speed-up | ours / unavoidable "
        "| reference / unavoidable | max \\|ΔAP\\| | peak MiB ours / reference | mean mAP | targets |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    notes = []
    for res in results:
        miss = check(res)
        notes += [f"- {res['size']} K={res['k']}: {m}." for m in miss]
        lines.append(
            f"| {res['size']} K={res['k']} | {fmt_seconds(res['ours'])} | {fmt_seconds(res['unavoidable'])} "
            f"({res['matmul_s']:.3g} + {res['sort_s']:.3g}) | {fmt_seconds(res['reference'])}{ref_note(res)} "
            f"| {res['speedup']:.1f}× | {res['over_unavoidable']:.2f} "
            f"| {res['ref_over_unavoidable']:.1f}×{'¹' if res['ref_stride'] > 1 else ''} | {res['max_abs_diff']:.1e} "
            f"| {res['peak_ours'] / 2**20:.0f} / {res['peak_ref'] / 2**20:.0f} | {res['map']:.4f} "
            f"| {'met' if not miss else 'missed'} |"
        )
    strided = sorted({r["ref_stride"] for r in results if r["ref_stride"] > 1})
    lines += [""] + [
        f"¹ The reference ran on every {st}th query row of each pair against the full gallery (its cost "
        "is one Python iteration per query and rank, so linear in the number of queries), to keep "
        "`make bench` under 15 minutes; the speed-up compares it with ours on exactly those queries, "
        f"timed back to back, and *reference / unavoidable* scales its time by {st}; |ΔAP| is over "
        "those queries." for st in strided]
    lines += [
        "",
        "Columns: times are median [min–max] wall-clock seconds for the 20 pairs; *unavoidable* is one "
        "float64 similarity matmul of pre-normalised embeddings plus one `argsort` (K = all) or "
        "`argpartition` (K = 50) per query row, in the same query blocks as ours, timed interleaved "
        "with ours; *reference* is the DSCMR/SDML-style loop (`cdist` cosine, `argsort`, Python loop "
        "per query and rank); *reference / unavoidable* is the speed-up of a method that would cost "
        "exactly the unavoidable work; *max |ΔAP|* is the largest difference of a per-query AP between ours "
        f"and the reference (target ≤ {MAX_ABS_DIFF:g}); *peak MiB* is the tracemalloc peak of one "
        "call on the largest pair (image→text): ours holds float64 copies of the two embedding "
        f"sets plus one query block (at most about 40 bytes × {DEFAULT_CHUNK_ENTRIES:,} entries), the reference holds the whole "
        "distance matrix and its argsort (its peak does not depend on K, so it is measured with "
        "K = 1 to keep tracemalloc off its Python loop).",
        "",
        f"BLAS is pinned to {BLAS_THREADS} thread for ours and the unavoidable work (the reference "
        "runs on one core). The machine is shared: absolute times move with the load of other "
        "processes (load averages above), so compare the ratios, which come from interleaved runs.",
        "",
        f"Targets: ≥ {TARGET_SPEEDUP:g}× faster than the reference at XMedia size, K = all; ours within "
        f"{TARGET_OVER_UNAVOIDABLE:g}× of the unavoidable work; |ΔAP| ≤ {MAX_ABS_DIFF:g}.",
    ]
    lines += ["", "Missed targets:", *notes] if notes else ["", "All targets met."]
    return "\n".join(lines)


def run(quick: bool = False, *, write_docs: bool | None = None) -> list[dict]:
    """Run the benchmark; returns one combined-table row per (size, K). Full runs update the docs."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:                       # no pinning possible: measured with the default threads
        return _run(quick, write_docs)
    with threadpool_limits(BLAS_THREADS, user_api="blas"):
        return _run(quick, write_docs)


def _run(quick: bool, write_docs: bool | None) -> list[dict]:
    mach = machine()
    sizes = ["XMedia"] if quick else ["XMedia", "XMediaNet"]
    repeats = {"XMedia": (3, 1) if quick else (7, 3), "XMediaNet": (2, 1)}
    strides = {"XMedia": 1, "XMediaNet": REF_STRIDE_XMEDIANET}
    results = []
    for size in sizes:
        counts, n_classes = SIZES[size]
        data = make_embeddings(counts, n_classes, seed=0)
        peak_ref = reference_peak(data)
        for k in KS:
            ours_rep, ref_rep = repeats[size]
            res = bench_case(size, data, k, ours_rep, ref_rep, peak_ref, strides[size])
            results.append(res)
            print(f"   {size} K={res['k']}: ours {fmt_seconds(res['ours'])} s, unavoidable "
                  f"{fmt_seconds(res['unavoidable'])} s, reference {fmt_seconds(res['reference'])} s, "
                  f"max|ΔAP| {res['max_abs_diff']:.1e}", flush=True)
    mach["load_at_end"] = load_average()
    print(f"   machine: {machine_line(mach)}")
    if write_docs if write_docs is not None else not quick:
        rep_text = "; ".join(f"{s}: ours/unavoidable ×{repeats[s][0]}, reference ×{repeats[s][1]}" for s in sizes)
        path = write_section(NAME, markdown(results, "python -m bench" + (" --quick" if quick else ""), mach, rep_text))
        print(f"   wrote {path.name} section {NAME}")
    return [row(r) for r in results]
