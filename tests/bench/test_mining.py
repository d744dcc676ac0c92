"""bench/mining.py: the quick run times both minings (after checking they agree) and leaves the docs alone."""

import pytest

from bench import DOCS_PERFORMANCE
from bench.__main__ import discover, main


def test_mining_is_discovered():
    assert "mining" in discover()


@pytest.mark.slow
def test_quick_run_compares_both_minings(capsys):
    before = DOCS_PERFORMANCE.read_text()
    assert main(["--quick", "--only", "mining"]) == 0
    out = capsys.readouterr().out
    assert "loss + gradient, B = 32" in out and "loss + gradient, B = 128" in out and "sort/cube" in out
    assert DOCS_PERFORMANCE.read_text() == before
