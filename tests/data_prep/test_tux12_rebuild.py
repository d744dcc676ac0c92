"""Slow: rebuild a few Tux-12 stamps through the real extractors (.venv-dataprep) and check them against the shipped arrays."""

import pytest

from data_prep import tux12
from tests.data_prep.rebuild import REPO, rebuild_and_compare

SHIPPED = REPO / "cvs_tf" / "datasets" / "tux12"


@pytest.mark.slow
def test_rebuilt_stamps_match_the_shipped_tux12(tmp_path):
    out = rebuild_and_compare("data_prep.tux12", [tux12.PACKAGE], SHIPPED, tmp_path / "tux12")
    # every modality was compared, item by item
    for m in ("image", "text", "speech", "audio"):
        assert f"compare: {m}: 20 items" in out
