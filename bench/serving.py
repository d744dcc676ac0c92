"""Serving: exported encoders vs ``model.embed``, and exact / approximate gallery search (faiss) at a million items.

One run measures, on the same inputs and in the same process:

* **export**: a CVS (D = 512, Tux-12 dims) exported with ``cvs_tf.serving.export_model``; the
  image SavedModel loaded with ``tf.saved_model.load`` embeds N rows vs ``model.embed`` in process:
  largest |difference| (goal ≤ 1e-6) and rows/s of both, interleaved, as a ratio;
* **exact search**: ``cvs_tf.retrieval.Index`` kind ``exact`` (faiss ``IndexFlatIP``) over a
  synthetic gallery of N × 512 float32 unit vectors (1,000,000 in the full run), Q = 1,000 queries,
  top 10: queries/s, achieved GFLOP/s (2·Q·N·D per search) as a fraction of the same-process sgemm
  limit (numpy float32 ``q @ g.T`` over the same gallery in 65,536-row blocks, nothing else), and
  the ratio to our own ranking path (``cvs_tf.evaluation.metrics``: float64 normalised gallery,
  default query chunks, ``top_k_indices``; timed on a subset of the queries, whose top 10 it also checks);
* **approximate search**: IVF-flat at several ``nprobe`` (whole gallery) and HNSW at several
  ``efSearch`` (on the first 100,000 items, against exact search of those: its graph build is the
  cost on two cores): recall@10 against the exact top 10, speed-up in queries/s over exact (goal:
  recall@10 ≥ 0.95 at ≥ 10× exact), build time;
* **memory**: index bytes / raw gallery bytes (N·D·4) and the peak RSS (``VmHWM``, reset before
  each build) while building, beside the RSS before it.

The gallery imitates a trained space: 100 class centres on the unit sphere, each item its class
centre plus isotropic noise of norm 2, L2-normalised (same-class cosine ≈ 0.2, the 10th neighbour
of a query at cosine ≈ 0.29); queries are fresh draws from the same classes. The full run writes
its section of docs/serving.md.
"""

from __future__ import annotations

import datetime as _dt
import gc
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import load_average, machine, machine_line, write_section
from bench.common import (
    gib,
    header,
    interleaved,
    paired_ratio,
    peak_rss_bytes,
    reset_peak_rss,
    rss_bytes,
    stats,
)

NAME = "serving"
DOCS_SERVING = Path(__file__).resolve().parents[1] / "docs" / "serving.md"
DIM = 512
K = 10
EXPORT_DIMS = {"image": 1280, "text": 384}          # Tux-12's image and caption features
GOAL_DIFF = 1e-6
GOAL_RECALL = 0.95
GOAL_SPEEDUP = 10.0
SGEMM_BLOCK = 65536


def settings(quick: bool) -> dict:
    if quick:
        return {"n": 20_000, "q": 100, "classes": 100, "ours_q": 20, "export_rows": 2048, "rounds": 2,
                "repeats": 2, "nlist": 128, "nprobe": (4, 8, 16), "hnsw_n": 10_000, "hnsw_m": 16,
                "ef_construction": 40, "ef_search": (32, 64, 128)}
    # HNSW is built on the first hnsw_n items only: a calibration build took 128 s at 200,000 items
    # on the 2 shared cores (M 32, efConstruction 40, load 4-5), and it grows faster than N
    return {"n": 1_000_000, "q": 1000, "classes": 100, "ours_q": 20, "export_rows": 16384, "rounds": 4,
            "repeats": 2, "nlist": 1024, "nprobe": (8, 16, 32), "hnsw_n": 100_000, "hnsw_m": 32,
            "ef_construction": 80, "ef_search": (64, 128, 256)}


# --------------------------------------------------------------------------- data


def make_gallery(n: int, classes: int, seed: int, centers=None, chunk: int = 65536):
    """(unit vectors (n, DIM) float32, class ids, centres): class centre + noise of norm 2, normalised."""
    rng = np.random.default_rng(seed)
    if centers is None:
        centers = rng.standard_normal((classes, DIM), dtype=np.float32)
        centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    y = rng.integers(0, classes, n)
    x = np.empty((n, DIM), dtype=np.float32)
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        block = centers[y[a:b]] + rng.standard_normal((b - a, DIM), dtype=np.float32) * np.float32(2.0 / np.sqrt(DIM))
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        x[a:b] = block
    return x, y, centers


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean |found ∩ exact| / k over queries (rows of item indices; -1 = nothing found)."""
    k = exact.shape[1]
    return float(np.mean([len(set(f[f >= 0]) & set(e)) / k for f, e in zip(found, exact)]))


def timed_builds(fn):
    """(seconds, peak RSS during the call, RSS before it, result)."""
    gc.collect()
    before = rss_bytes()
    reset_peak_rss()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, peak_rss_bytes(), before, out


def time_search(fn, repeats: int) -> dict:
    times = []
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return {**stats(times), "out": out}


# --------------------------------------------------------------------------- export


def bench_export(st: dict) -> dict:
    import keras
    import tensorflow as tf

    from cvs_tf.models import CVSModel
    from cvs_tf.serving import export_model

    keras.utils.set_random_seed(0)
    model = CVSModel(dict(EXPORT_DIMS), 10, attention=False, dim=DIM)
    x = np.random.default_rng(0).standard_normal((st["export_rows"], EXPORT_DIMS["image"])).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        export_model(model, Path(tmp) / "exp")
        loaded = tf.saved_model.load(str(Path(tmp) / "exp" / "image"))
        served = loaded.serve(x).numpy()
        inproc = model.embed("image", x).numpy()
        diff = float(np.max(np.abs(served - inproc)))
        xt = tf.constant(x)
        times, _ = interleaved({"served": lambda: loaded.serve(xt), "embed": lambda: model.embed("image", x)},
                               st["rounds"], 3, warmup=1)
    ratio = paired_ratio(times["embed"], times["served"], 3)       # served rows/s over in-process rows/s
    s, e = stats(times["served"]), stats(times["embed"])
    n = st["export_rows"]
    return {"rows": n, "max_abs_diff": diff, "served_rows_s": n / s["median"], "embed_rows_s": n / e["median"],
            "ratio": ratio["median"], "ratio_range": (ratio["min"], ratio["max"])}


# --------------------------------------------------------------------------- search


def sgemm_pass(q: np.ndarray, g: np.ndarray) -> float:
    """Seconds of numpy float32 q @ g.T over the gallery in SGEMM_BLOCK-row blocks (the matmul alone)."""
    t0 = time.perf_counter()
    for a in range(0, g.shape[0], SGEMM_BLOCK):
        np.matmul(q, g[a:a + SGEMM_BLOCK].T)
    return time.perf_counter() - t0


def ours_ranking(q: np.ndarray, g: np.ndarray, k: int) -> tuple[float, np.ndarray]:
    """(seconds, top-k rows): cvs_tf.evaluation.metrics' ranking path (float64, default chunks, top_k_indices)."""
    from cvs_tf.evaluation.metrics import _chunk_rows, _l2_normalize, top_k_indices

    t0 = time.perf_counter()
    gT = _l2_normalize(g).T
    step = _chunk_rows(None, g.shape[0])
    qn = np.asarray(q, dtype=np.float64)
    rows = np.concatenate([top_k_indices(qn[a:a + step] @ gT, k) for a in range(0, len(qn), step)])
    return time.perf_counter() - t0, rows


def bench_search(st: dict) -> dict:
    import faiss

    from cvs_tf.retrieval import Index

    n, nq = st["n"], st["q"]
    raw = n * DIM * 4
    t0 = time.perf_counter()
    g, _, centers = make_gallery(n, st["classes"], seed=0)
    q, _, _ = make_gallery(nq, st["classes"], seed=1, centers=centers)
    gen_s = time.perf_counter() - t0
    res: dict = {"n": n, "q": nq, "raw_bytes": raw, "gen_s": gen_s, "threads": faiss.omp_get_max_threads()}

    # exact: build, then reuse the index's own storage as the gallery (no second 2 GB copy)
    b_s, peak, before, exact = timed_builds(lambda: Index.build(g, "exact"))
    res["exact_build"] = {"s": b_s, "peak": peak, "before": before, "bytes": exact.nbytes()}
    del g
    gc.collect()
    g = faiss.rev_swig_ptr(exact.faiss_index.get_xb(), n * DIM).reshape(n, DIM)
    flops = 2.0 * nq * n * DIM
    ex_t, mm_t = [], []
    found = None
    for r in range(st["repeats"]):                      # exact search and the sgemm limit, interleaved
        for case in (("exact", "sgemm") if r % 2 == 0 else ("sgemm", "exact")):
            if case == "exact":
                t1 = time.perf_counter()
                scores, found = exact.search(q, K)
                ex_t.append(time.perf_counter() - t1)
            else:
                mm_t.append(sgemm_pass(q, g))
    ex, mm = stats(ex_t), stats(mm_t)
    res["exact"] = {"t": ex, "qps": nq / ex["median"], "gflops": flops / ex["median"] / 1e9,
                    "sgemm_gflops": flops / mm["median"] / 1e9, "sgemm_t": mm,
                    "fraction": mm["median"] / ex["median"], "kth_score": float(np.mean(scores[:, -1]))}

    # our own ranking path, on the first ours_q queries (float64 copy of the gallery: N·D·8 bytes)
    sub = st["ours_q"]
    ours_s, ours_rows = ours_ranking(q[:sub], g, K)
    gc.collect()
    agree = recall_at_k(ours_rows, found[:sub])
    res["ours"] = {"q": sub, "s": ours_s, "qps": sub / ours_s, "agree": agree,
                   "ratio": (nq / ex["median"]) / (sub / ours_s)}

    approx = []
    b_s, peak, before, ivf = timed_builds(lambda: Index.build(g, "ivf", nlist=st["nlist"]))
    build = {"s": b_s, "peak": peak, "before": before, "bytes": ivf.nbytes()}
    for p in st["nprobe"]:
        t = time_search(lambda p=p: ivf.search(q, K, nprobe=p), st["repeats"])
        approx.append({"kind": "ivf", "setting": f"nlist {st['nlist']}, nprobe {p}", "t": t,
                       "recall": recall_at_k(t["out"][1], found), "build": build})
    ivf = None                                          # free it before the HNSW build
    gc.collect()
    # HNSW on the first hnsw_n items, against the exact top k of that sub-gallery
    hn = min(n, st["hnsw_n"])
    sub_g = g[:hn]
    sub_exact = Index.build(sub_g, "exact")
    t = time_search(lambda: sub_exact.search(q, K), st["repeats"])
    sub_found, sub_exact_t = t["out"][1], t["median"]
    sub_exact = None
    b_s, peak, before, hnsw = timed_builds(lambda: Index.build(sub_g, "hnsw", hnsw_m=st["hnsw_m"],
                                                               ef_construction=st["ef_construction"]))
    build = {"s": b_s, "peak": peak, "before": before, "bytes": hnsw.nbytes(), "raw": hn * DIM * 4}
    for ef in st["ef_search"]:
        t = time_search(lambda ef=ef: hnsw.search(q, K, ef_search=ef), st["repeats"])
        approx.append({"kind": "hnsw", "n": hn, "exact_t": sub_exact_t,
                       "setting": f"M {st['hnsw_m']}, efConstruction {st['ef_construction']}, efSearch {ef}",
                       "t": t, "recall": recall_at_k(t["out"][1], sub_found), "build": build})
    hnsw = None
    res["hnsw_exact_qps"] = nq / sub_exact_t
    for a in approx:
        a.setdefault("n", n)
        a["build"].setdefault("raw", raw)
        a["qps"] = nq / a["t"]["median"]
        a["speedup"] = a.get("exact_t", ex["median"]) / a["t"]["median"]
        a["meets"] = a["recall"] >= GOAL_RECALL and a["speedup"] >= GOAL_SPEEDUP
        del a["t"]["out"]
    res["approx"] = approx
    return res


# --------------------------------------------------------------------------- report


def _mib(n: float) -> str:
    return f"{n / 2**20:.0f} MiB" if n < 2**30 else gib(n)


def rows_of(exp: dict, res: dict) -> list[dict]:
    n = f"{res['n']:,}×{DIM}"
    out = [{"bench": NAME, "case": f"export image rows={exp['rows']}",
            "max|Δ|": f"{exp['max_abs_diff']:.1e}", "served/embed": f"{exp['ratio']:.2f}",
            "goal": f"Δ ≤ {GOAL_DIFF:g}: {'met' if exp['max_abs_diff'] <= GOAL_DIFF else 'MISSED'}"},
           {"bench": NAME, "case": f"exact {n} Q={res['q']}", "qps": f"{res['exact']['qps']:.0f}",
            "of sgemm limit": f"{res['exact']['fraction']:.0%}", "vs ours": f"{res['ours']['ratio']:.1f}×",
            "bytes/raw": f"{res['exact_build']['bytes'] / res['raw_bytes']:.2f}"}]
    for a in res["approx"]:
        out.append({"bench": NAME, "case": f"{a['kind']} N={a['n']:,} {a['setting']}", "qps": f"{a['qps']:.0f}",
                    "recall@10": f"{a['recall']:.3f}", "speed-up": f"{a['speedup']:.1f}×",
                    "bytes/raw": f"{a['build']['bytes'] / a['build']['raw']:.2f}",
                    "goal": "met" if a["meets"] else "-"})
    return out


def markdown(exp: dict, res: dict, st: dict, command: str, mach: dict, wall: float) -> str:
    raw = res["raw_bytes"]
    ex, eb, ours = res["exact"], res["exact_build"], res["ours"]
    met = [a for a in res["approx"] if a["meets"]]
    lines = [
        "## Benchmark figures (bench/serving.py)",
        "",
        f"Command: `{command}` — measured {_dt.date.today().isoformat()} on: {machine_line(mach)}; "
        f"faiss {__import__('faiss').__version__} with {res['threads']} OpenMP threads; whole run {wall:.0f} s.",
        "",
        "### Export",
        "",
        f"CVS (no attention, D = {DIM}) with Tux-12's input dims; the image SavedModel loaded with "
        f"`tf.saved_model.load` against `model.embed` on the same {exp['rows']:,} rows of "
        f"{EXPORT_DIMS['image']} features ({st['rounds']} interleaved rounds × 3 calls).",
        "",
        "| largest \\|served − model.embed\\| | served rows/s | model.embed rows/s | served / embed |",
        "|---:|---:|---:|---:|",
        f"| {exp['max_abs_diff']:.1e} (goal ≤ {GOAL_DIFF:g}: {'met' if exp['max_abs_diff'] <= GOAL_DIFF else 'missed'}) "
        f"| {exp['served_rows_s']:,.0f} | {exp['embed_rows_s']:,.0f} | {exp['ratio']:.2f} "
        f"[{exp['ratio_range'][0]:.2f}–{exp['ratio_range'][1]:.2f}] |",
        "",
        "### Exact search",
        "",
        f"Gallery {res['n']:,} × {DIM} float32 ({_mib(raw)}; {st['classes']} classes, see the module docstring; "
        f"generated in {res['gen_s']:.0f} s), {res['q']:,} queries, top {K}; {st['repeats']} searches, "
        "interleaved with the sgemm pass.",
        "",
        "| path | queries/s | GFLOP/s | of the sgemm limit | seconds for all queries |",
        "|---|---:|---:|---:|---:|",
        f"| `Index` exact (faiss IndexFlatIP) | {ex['qps']:,.1f} | {ex['gflops']:.1f} | {ex['fraction']:.0%} "
        f"| {ex['t']['median']:.2f} [{ex['t']['min']:.2f}–{ex['t']['max']:.2f}] |",
        f"| sgemm limit: numpy float32 `q @ g.T`, {SGEMM_BLOCK:,}-row blocks, no top-k | "
        f"{res['q'] / ex['sgemm_t']['median']:,.1f} | {ex['sgemm_gflops']:.1f} | 100% | {ex['sgemm_t']['median']:.2f} |",
        f"| ours: `cvs_tf.evaluation.metrics` ranking (float64, default chunks, `top_k_indices`), "
        f"{ours['q']} queries | {ours['qps']:,.2f} | {2 * ours['q'] * res['n'] * DIM / ours['s'] / 1e9:.1f} "
        f"| — | {ours['s']:.1f} for {ours['q']} |",
        "",
        f"Exact search is **{ours['ratio']:.0f}×** our own ranking path in queries/s; on the {ours['q']} queries "
        f"both ranked, their top {K} agree on {ours['agree']:.1%} of the items (ties aside). Ours pays for "
        "float64 (a gallery copy of N·D·8 bytes, twice the memory traffic) and, at this gallery size, "
        "its default chunk of 2²⁰ / N queries is one query per matrix-vector product, memory-bound; "
        "faiss multiplies blocks of queries by blocks of the gallery in float32 (sgemm) and keeps a "
        "top-k heap per query.",
        "",
        "### Approximate search",
        "",
        "| index | gallery | queries/s | speed-up over exact | recall@10 vs exact | build s | index bytes / raw | "
        "peak RSS while building (RSS before) | goal |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
        f"| exact (IndexFlatIP) | {res['n']:,} | {ex['qps']:,.1f} | 1.0× | 1.000 | {eb['s']:.1f} | {eb['bytes'] / raw:.2f} "
        f"| {_mib(eb['peak'])} ({_mib(eb['before'])}) | — |",
    ]
    for a in res["approx"]:
        b = a["build"]
        lines.append(
            f"| {a['kind']}: {a['setting']} | {a['n']:,} | {a['qps']:,.0f} | {a['speedup']:.1f}× | {a['recall']:.3f} "
            f"| {b['s']:.1f} | {b['bytes'] / b['raw']:.2f} | {_mib(b['peak'])} ({_mib(b['before'])}) "
            f"| {'met' if a['meets'] else '—'} |")
    hn = [a for a in res["approx"] if a["kind"] == "hnsw"]
    if hn and hn[0]["n"] < res["n"]:
        lines += ["", f"HNSW ran on the first {hn[0]['n']:,} gallery items: its speed-up and recall are against "
                  f"exact search of that sub-gallery ({res['hnsw_exact_qps']:,.0f} queries/s), which is itself ten "
                  "times cheaper than at a million items, while a graph walk grows only slowly with N. Building "
                  "the graph is what keeps it out of the million-item run on two shared cores: a calibration "
                  "build took 128 s at 200,000 items (efConstruction 40, load average 4–5), and the build "
                  "grows a little faster than N. IVF-flat is the index measured at a million items here."]
    lines += [
        "",
        (f"Goal (recall@10 ≥ {GOAL_RECALL} at ≥ {GOAL_SPEEDUP:g}× the exact queries/s): **met** by "
         + ", ".join(f"{a['kind']} {a['setting']} ({a['recall']:.3f}, {a['speedup']:.0f}×)" for a in met) + "."
         if met else
         f"Goal (recall@10 ≥ {GOAL_RECALL} at ≥ {GOAL_SPEEDUP:g}× the exact queries/s): **missed** at every setting measured."),
        "",
        f"Peak RSS is the process's `VmHWM`, reset before each build; it includes the gallery itself "
        f"({_mib(raw)}: generated, then held once as the exact index's storage) and TensorFlow; the "
        "float64 gallery copy of our ranking path is freed before the IVF build. An IVF-flat index "
        "stores every vector once more (bytes / raw ≈ 1 plus 8 bytes of id per item), HNSW adds its "
        f"links. Load average at the end of the run: {load_average()}.",
    ]
    return "\n".join(lines)


def run(quick: bool = False, *, write_docs: bool | None = None, overrides: dict | None = None) -> list[dict]:
    mach = machine()
    st = {**settings(quick), **(overrides or {})}
    print(header(NAME, quick, "none (SavedModel serve, faiss)"), flush=True)
    t0 = time.perf_counter()
    exp = bench_export(st)
    print(f"   export: max|Δ| {exp['max_abs_diff']:.1e}, served {exp['served_rows_s']:,.0f} rows/s, "
          f"embed {exp['embed_rows_s']:,.0f} rows/s, ratio {exp['ratio']:.2f}", flush=True)
    res = bench_search(st)
    ex = res["exact"]
    print(f"   exact {res['n']:,}×{DIM}, Q={res['q']}: {ex['qps']:.1f} q/s, {ex['gflops']:.1f} GFLOP/s "
          f"= {ex['fraction']:.0%} of sgemm ({ex['sgemm_gflops']:.1f}); ours {res['ours']['qps']:.2f} q/s "
          f"({res['ours']['ratio']:.0f}×, agree {res['ours']['agree']:.3f})", flush=True)
    for a in res["approx"]:
        print(f"   {a['kind']} {a['setting']}: recall@10 {a['recall']:.3f}, {a['qps']:.0f} q/s, "
              f"{a['speedup']:.1f}× exact, build {a['build']['s']:.1f} s", flush=True)
    wall = time.perf_counter() - t0
    if (write_docs if write_docs is not None else not quick) and not overrides:
        mach["load_at_end"] = load_average()
        path = write_section(NAME, markdown(exp, res, st, "python -m bench --only serving", mach, wall),
                             path=DOCS_SERVING)
        print(f"   wrote {path.name} section {NAME}")
    return rows_of(exp, res)


if __name__ == "__main__":                      # calibration: python -m bench.serving N
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    for r in run(False, write_docs=False, overrides={"n": n, "nlist": int(os.environ.get("NLIST", 1024))}):
        print(r)
