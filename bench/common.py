"""TensorFlow-side benchmark helpers: interleaved step timing, matmul-limit probes, analytic FLOPs, RSS and run headers."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# --------------------------------------------------------------------------- run description


def tf_info() -> dict:
    """TF version, op threads in use and the XLA-related environment, for every benchmark header."""
    import tensorflow as tf

    intra = tf.config.threading.get_intra_op_parallelism_threads()
    inter = tf.config.threading.get_inter_op_parallelism_threads()
    cores = os.cpu_count()
    return {
        "tensorflow": tf.__version__,
        "intra_threads": intra or f"default ({cores})",
        "inter_threads": inter or f"default ({cores})",
        "gpu": ", ".join(d.name for d in tf.config.list_physical_devices("GPU")) or "none",
        "xla_flags": os.environ.get("XLA_FLAGS", "") or "none",
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
    }


def header(name: str, quick: bool, xla: str) -> str:
    """One line printed before a benchmark's results: TF version, threads, XLA use."""
    i = tf_info()
    return (f"   [{name}{' quick' if quick else ''}] TensorFlow {i['tensorflow']}, intra-op threads "
            f"{i['intra_threads']}, inter-op threads {i['inter_threads']}, GPU {i['gpu']}, XLA: {xla} "
            f"(XLA_FLAGS {i['xla_flags']})")


def tf_line() -> str:
    i = tf_info()
    return (f"TensorFlow {i['tensorflow']}, intra-op threads {i['intra_threads']}, inter-op threads "
            f"{i['inter_threads']}, GPU: {i['gpu']}, oneDNN {i['onednn']}, XLA_FLAGS {i['xla_flags']}")


# --------------------------------------------------------------------------- timing


def stats(times: list[float]) -> dict:
    """Median, min, max (seconds) and count of repeated timings."""
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "n": len(times)}


def fmt_ms(s: dict) -> str:
    """``median [min–max]`` in milliseconds."""
    return f"{s['median'] * 1e3:.1f} [{s['min'] * 1e3:.1f}–{s['max'] * 1e3:.1f}]"


def sync(out) -> None:
    """Block until the work that produced ``out`` is done (device sync; CPU ops already are)."""
    import tensorflow as tf

    del out
    tf.test.experimental.sync_devices()


def interleaved(cases: dict[str, Callable[[], object]], rounds: int, calls: int,
                warmup: int = 2) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Time every case in turn, ``rounds`` times, ``calls`` synchronised calls each.

    Cases see the same machine load because they alternate (the order rotates each round).
    Returns ({case: seconds per call, one entry per call}, {case: seconds of the first call,
    i.e. tracing/compilation plus one step}).
    """
    first: dict[str, float] = {}
    for name, fn in cases.items():
        t0 = time.perf_counter()
        sync(fn())
        first[name] = time.perf_counter() - t0
        for _ in range(warmup):
            sync(fn())
    times: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            fn = cases[name]
            for _ in range(calls):
                t0 = time.perf_counter()
                sync(fn())
                times[name].append(time.perf_counter() - t0)
    return times, first


def paired_ratio(num: list[float], den: list[float], calls: int) -> dict:
    """Per-round ratio of two interleaved cases (median of each round's calls), summarised over rounds.

    Both cases ran back to back in every round, so each round's ratio sees one machine load:
    this is steadier than the ratio of the overall medians when the load drifts.
    """
    rounds = min(len(num), len(den)) // calls
    ratios = [statistics.median(num[r * calls:(r + 1) * calls]) / statistics.median(den[r * calls:(r + 1) * calls])
              for r in range(rounds)]
    return stats(ratios)


# --------------------------------------------------------------------------- matmul FLOPs


@dataclass(frozen=True)
class MatMul:
    """One matrix product (m × k) · (k × n) of a step: 2·m·k·n FLOPs."""

    m: int
    k: int
    n: int
    what: str = ""

    @property
    def flops(self) -> int:
        return 2 * self.m * self.k * self.n


def total_flops(products: list[MatMul]) -> int:
    return sum(p.flops for p in products)


def dense_products(rows: int, k: int, n: int, what: str, *, weight_grad: bool, input_grad: bool,
                   forward: bool = True) -> list[MatMul]:
    """Products of ``Y = X W`` (X rows × k, W k × n): forward, dW = Xᵀ dY, dX = dY Wᵀ as needed."""
    out = [MatMul(rows, k, n, f"{what} fwd")] if forward else []
    if weight_grad:
        out.append(MatMul(k, rows, n, f"{what} dW"))
    if input_grad:
        out.append(MatMul(rows, n, k, f"{what} dX"))
    return out


def matmul_skeleton(products: list[MatMul], jit: bool, seed: int = 0):
    """A tf.function running every product once as a plain ``tf.matmul`` (the step's matmuls alone).

    Every product gets its own operands and is an output, so neither Grappler nor XLA can merge
    (common-subexpression elimination), drop or shrink any of them.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    operands = [(tf.constant(rng.standard_normal((p.m, p.k), dtype=np.float32)),
                 tf.constant(rng.standard_normal((p.k, p.n), dtype=np.float32))) for p in products]

    @tf.function(jit_compile=jit)
    def run():
        return [tf.matmul(a, b) for a, b in operands]

    return run


# --------------------------------------------------------------------------- memory


def rss_bytes() -> int:
    """Current resident set size of this process (``VmRSS``)."""
    return _status_kib("VmRSS") * 1024


def peak_rss_bytes() -> int:
    """Peak resident set size of this process since start or the last :func:`reset_peak_rss` (``VmHWM``)."""
    return _status_kib("VmHWM") * 1024


def reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux ``clear_refs`` 5); False when not permitted."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {key}")


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"
