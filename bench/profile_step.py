"""Where a training step's CPU time goes: ``perf`` samples of the CVS+attention step, grouped by kind of code.

``python -m bench.profile_step [--mode loss|off|full] [--seconds 25]`` builds the CVS+attention
step of ``bench.train_step`` (XMedia-shaped synthetic stand-in, batch 128, D = 512), warms it
up, then runs steps while ``perf record -g -p PID`` samples this process, and prints the share
of samples per group: matmul kernels (oneDNN and XLA dot), TF's Eigen elementwise kernels,
memory copies, XLA's runtime and reductions, JIT-generated code (oneDNN kernels or XLA fusions;
perf cannot tell them apart), thread pools, the kernel. Needs Linux ``perf`` with
``perf_event_paranoid`` ≤ 2; it is not part of ``python -m bench`` (not every machine has perf).
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from cvs_tf.utils.cli import ArgumentParser, CliError, run_cli

GROUPS = (
    ("matmul kernels (oneDNN, XLA dot)", lambda dso, sym: "ynn::dot" in sym or "dnnl" in sym or "gemm" in sym.lower()),
    ("JIT code (oneDNN kernels or XLA fusions)", lambda dso, sym: dso.startswith("[JIT]")),
    ("memory copies (memmove/memcpy)", lambda dso, sym: "memmove" in sym or "memcpy" in sym),
    ("XLA runtime and reductions", lambda dso, sym: "ynn::" in sym or "slinky" in sym or "xla::" in sym),
    ("TF elementwise/reduction kernels (Eigen)", lambda dso, sym: "Eigen::internal" in sym or "TensorExecutor" in sym),
    ("thread pools", lambda dso, sym: any(k in sym for k in ("ThreadPool", "RunQueue", "tsl::", "futex"))),
    ("kernel (scheduling, page faults)", lambda dso, sym: dso.startswith("[kernel")),
)


def categorise(report: str) -> dict[str, float]:
    """Percent of samples per group from ``perf report --sort dso,symbol -g none --stdio`` text."""
    shares: collections.Counter = collections.Counter()
    for line in report.splitlines():
        m = re.match(r"\s+([\d.]+)%\s+(.+?)\s+\[.\]\s+(.*)", line)
        if not m:
            continue
        pct, dso, sym = float(m.group(1)), m.group(2), m.group(3)
        group = next((name for name, test in GROUPS if test(dso, sym)), "other")
        shares[group] += pct
    return dict(shares.most_common())


def profile(mode: str, seconds: float) -> tuple[dict, float]:
    import tensorflow as tf

    from bench.standin import setup, xmedia

    tf.get_logger().setLevel("ERROR")
    s = setup("cvs", 0, mode, fs=xmedia(0.1), batch=128, dim=512)
    for _ in range(3):
        s.step_constant()
    out = tempfile.mkdtemp(prefix="cvs_tf-perf-")
    data = os.path.join(out, "perf.data")
    done = threading.Event()
    steps = []

    def work():
        while not done.is_set():
            t0 = time.perf_counter()
            s.step_constant()
            steps.append(time.perf_counter() - t0)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    try:
        subprocess.run(["perf", "record", "-F", "199", "-g", "-p", str(os.getpid()), "-o", data, "--",
                        "sleep", str(seconds)], check=True, capture_output=True)
    finally:
        done.set()
        worker.join()
    report = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "dso,symbol", "-g", "none",
                             "--stdio", "--percent-limit", "0"], check=True, capture_output=True, text=True).stdout
    shutil.rmtree(out, ignore_errors=True)
    steps.sort()
    return categorise(report), steps[len(steps) // 2]


def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m bench.profile_step", description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=("off", "loss", "full"), default="loss", help="XLA mode of the step [loss]")
    p.add_argument("--seconds", type=float, default=25.0, help="sampling time [25]")
    args = p.parse_args(argv)
    if shutil.which("perf") is None:
        raise CliError("perf is not installed (Linux perf is needed for this profile)")
    shares, step = profile(args.mode, args.seconds)
    print(f"CVS+attention step, XLA mode {args.mode}: median {step * 1e3:.0f} ms; share of CPU samples:")
    for name, pct in shares.items():
        print(f"  {pct:5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
