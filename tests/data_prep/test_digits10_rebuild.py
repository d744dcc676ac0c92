"""Slow: rebuild a few Digits-10 items through the real extractors (.venv-dataprep) and check them against the shipped arrays."""

import pytest

from data_prep import digits10
from tests.data_prep.rebuild import REPO, rebuild_and_compare

SHIPPED = REPO / "cvs_tf" / "datasets" / "digits10"


@pytest.mark.slow
def test_rebuilt_digits_match_the_shipped_digits10(tmp_path):
    out = rebuild_and_compare("data_prep.digits10", digits10.PACKAGES, SHIPPED, tmp_path / "digits10")
    for m in ("image", "text", "speech", "audio"):
        assert f"compare: {m}: 20 items" in out
