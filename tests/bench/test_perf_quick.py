"""Smoke run of the performance benchmarks' quick mode (`python -m bench --quick` pieces): rows, ratios, docs untouched."""

import pytest

from bench import DOCS_PERFORMANCE
from bench.__main__ import main

PIECES = ["train_step", "pipeline_overhead", "growth", "pairwise"]


@pytest.mark.slow
def test_quick_run_prints_one_table_and_leaves_docs_alone(capsys):
    before = DOCS_PERFORMANCE.read_text() if DOCS_PERFORMANCE.exists() else None
    assert main(["--quick", "--only", *PIECES]) == 0
    out = capsys.readouterr().out
    for name in PIECES:
        assert f"== bench.{name} (quick)" in out
        assert f"[{name} quick] TensorFlow" in out          # header: TF version, threads, XLA
    table = out[out.rindex("bench "):]
    for needle in ("train_step", "of matmul limit", "pipeline/constant", "M-CVS/CVS", "pairs/s"):
        assert needle in table
    assert (DOCS_PERFORMANCE.read_text() if DOCS_PERFORMANCE.exists() else None) == before


def test_every_benchmark_is_discovered():
    from bench.__main__ import discover

    assert set(PIECES + ["scale", "determinism"]) <= set(discover())
