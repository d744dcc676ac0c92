"""Bit-for-bit comparison of two run directories (weights, metrics.json, every logged loss term)."""

import json
from pathlib import Path

from cvs_tf.training.run_dir import load_run


def run_weights(run: Path) -> list:
    model, _, _ = load_run(run)
    return model.get_weights()


def assert_bitwise_equal_runs(a: Path, b: Path) -> None:
    """metrics.json byte for byte, history.json value for value (every loss term, the total included)
    and every weight of the final model bit for bit."""
    assert (a / "metrics.json").read_bytes() == (b / "metrics.json").read_bytes()
    ha, hb = (json.loads((p / "history.json").read_text()) for p in (a, b))
    assert ha == hb
    for wa, wb in zip(run_weights(a), run_weights(b), strict=True):
        assert wa.dtype == wb.dtype and wa.tobytes() == wb.tobytes()
