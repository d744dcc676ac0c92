"""bench/gpu_check.py without a GPU: one line saying so, exit status 0; it is a device check, not a `python -m bench` piece."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_without_a_gpu_it_prints_one_line_and_exits_0():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-m", "bench.gpu_check"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: no GPU visible to TensorFlow"), proc.stdout


def test_it_is_not_run_by_make_bench():
    from bench.__main__ import discover

    assert "gpu_check" not in discover()


def test_an_unknown_option_is_one_error_line_and_exit_2():
    proc = subprocess.run([sys.executable, "-m", "bench.gpu_check", "--bogus"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "--bogus" in err[0], proc.stderr
