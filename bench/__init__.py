"""Benchmarks run by ``python -m bench``: shared timing, memory, machine-description and docs-section helpers.

Adding a benchmark: put a module ``bench/<name>.py`` with a function ``run(quick: bool) -> list[dict]``.
``python -m bench`` discovers it (every module of this package that defines ``run``), calls it,
and prints all returned rows as one combined table; the columns are the union of the rows'
keys, in first-seen order (use ``bench`` and ``case`` as the first two keys). A module that
documents its results writes its own section of ``docs/performance.md`` with
:func:`write_section`, between ``<!-- bench:<name> -->`` and ``<!-- /bench:<name> -->``, so
every section can be regenerated independently of the others.
"""

from __future__ import annotations

import gc
import os
import platform
import re
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

DOCS_PERFORMANCE = Path(__file__).resolve().parents[1] / "docs" / "performance.md"

_HEADER = """# Performance

Measured figures, each section written by the benchmark named in its markers
(`<!-- bench:NAME -->` … `<!-- /bench:NAME -->`): rerun that benchmark to regenerate its
section; the text outside the markers is kept. Run all of them with `make bench`
(`python -m bench`), or a short smoke run with `make bench QUICK=1` (`python -m bench --quick`,
which prints but leaves this file alone).
"""


def timed(fn: Callable, *args, **kwargs) -> tuple[float, object]:
    """(seconds, result) of one call, wall clock (``time.perf_counter``)."""
    gc.collect()
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def summary(times: list[float]) -> dict:
    """Median, min and max of repeated timings, in seconds."""
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "n": len(times)}


def fmt_seconds(s: dict) -> str:
    """``median [min–max]`` (or just the value for a single run), in seconds."""
    if s["n"] == 1:
        return f"{s['median']:.3g}"
    return f"{s['median']:.3g} [{s['min']:.3g}–{s['max']:.3g}]"


def peak_memory(fn: Callable, *args, **kwargs) -> tuple[int, object]:
    """(peak bytes allocated by Python and numpy during the call, result), via ``tracemalloc``."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        out = fn(*args, **kwargs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, out


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def blas_threads() -> str:
    """BLAS library and thread count as numpy uses them (threadpoolctl, when available)."""
    try:
        from threadpoolctl import threadpool_info

        infos = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        if infos:
            return ", ".join(
                f"{i.get('internal_api')} ({Path(i.get('filepath', '')).parent.name or '?'}) "
                f"{i.get('num_threads')} thread{'s' if i.get('num_threads') != 1 else ''}"
                for i in infos
            )
    except ImportError:
        pass
    return "unknown"


def load_average() -> str:
    """The 1/5/15-minute load averages (other processes compete for the same cores)."""
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def machine() -> dict:
    """What the figures were measured on."""
    load = load_average()
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "load_at_start": load,
        "python": sys.version.split()[0],
        "numpy": _version("numpy"),
        "scipy": _version("scipy"),
        "tensorflow": _version("tensorflow"),
        "blas": blas_threads(),
        "platform": platform.platform(),
    }


def machine_line(m: dict | None = None) -> str:
    m = m or machine()
    end = f", {m['load_at_end']} at end" if m.get("load_at_end") else ""
    return (f"{m['cpu']}, {m['cores']} cores (load average {m['load_at_start']} at start{end}), "
            f"{m['platform']}; Python {m['python']}, numpy {m['numpy']}, scipy {m['scipy']}, "
            f"TensorFlow {m['tensorflow']}; BLAS: {m['blas']}")


def write_section(name: str, body: str, path: str | os.PathLike = DOCS_PERFORMANCE) -> Path:
    """Replace (or append) the ``<!-- bench:name -->`` section of ``path`` with ``body``."""
    path = Path(path)
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text() if path.exists() else _HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n")
    return path
