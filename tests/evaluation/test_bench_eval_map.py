"""Tests for the evaluation benchmark: its DSCMR-style reference agrees with map_at_k; docs sections and the runner table."""

import numpy as np
import pytest

from bench import write_section
from bench.__main__ import combined_table, discover
from bench.eval_map import reference_map
from cvs_tf.evaluation import map_at_k


@pytest.mark.parametrize("k", [5, None])
def test_reference_loop_agrees_with_map_at_k(k):
    rng = np.random.default_rng(0)
    q, r = rng.normal(size=(30, 16)).astype(np.float32), rng.normal(size=(40, 16)).astype(np.float32)
    yq, yr = rng.integers(0, 4, 30), rng.integers(0, 4, 40)
    m_ref, per_ref = reference_map(q, r, yq, yr, 0 if k is None else k)
    m, per = map_at_k(q, r, yq, yr, k, return_per_query=True)
    assert np.max(np.abs(per - per_ref)) <= 1e-12 and m == pytest.approx(m_ref, abs=1e-12)


def test_write_section_replaces_only_its_own_block(tmp_path):
    doc = tmp_path / "performance.md"
    write_section("a", "first A", doc)
    write_section("b", "only B", doc)
    write_section("a", "second A", doc)
    text = doc.read_text()
    assert text.startswith("# Performance")
    assert "second A" in text and "first A" not in text and "only B" in text
    assert text.count("<!-- bench:a -->") == 1 and text.count("<!-- /bench:b -->") == 1
    assert text.index("<!-- bench:a -->") < text.index("<!-- bench:b -->")      # order kept


def test_runner_discovers_modules_and_joins_rows():
    assert "eval_map" in discover()
    out = combined_table([{"bench": "x", "case": "c1", "ratio": "2×"}, {"bench": "y", "case": "c2", "other": 1}])
    lines = out.splitlines()
    assert lines[0].split() == ["bench", "case", "ratio", "other"] and len(lines) == 4
