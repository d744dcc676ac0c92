"""Slow: rebuild a few Furniture pieces through the real extractors (.venv-dataprep) and check them against the shipped arrays."""

import pytest

from data_prep import furniture
from tests.data_prep.rebuild import REPO, rebuild_and_compare

SHIPPED = REPO / "cvs_tf" / "datasets" / "furniture"


@pytest.mark.slow
def test_rebuilt_pieces_match_the_shipped_furniture(tmp_path):
    out = rebuild_and_compare("data_prep.furniture", [furniture.PACKAGE], SHIPPED, tmp_path / "furniture")
    for m in furniture.MODALITIES:
        assert f"compare: {m}: 22 items" in out
