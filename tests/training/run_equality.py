"""Bit-for-bit comparison of two run directories (weights, metrics.json, every logged loss term)."""

import json
from pathlib import Path

import numpy as np

from cvs_tf.training.run_dir import load_run


def run_weights(run: Path) -> list:
    model, _, _ = load_run(run)
    return model.get_weights()


def _without_totals(history: dict) -> tuple[dict, list]:
    """history.json with each epoch's logged total (``loss``, ``val_loss``) taken out, and those totals."""
    totals = [(e.get("loss"), e.get("val_loss")) for s in history["stages"] for e in s["epochs"]]
    rest = {**history, "stages": [{**s, "epochs": [{k: v for k, v in e.items() if k not in ("loss", "val_loss")}
                                                   for e in s["epochs"]]} for s in history["stages"]]}
    return rest, totals


def assert_bitwise_equal_runs(a: Path, b: Path) -> None:
    """metrics.json byte for byte, every weight of the final model bit for bit, and history.json value for
    value: every loss term, val_map and the best epoch exactly. The logged totals may differ by float32
    rounding (a few ulp): inside one pytest process a resumed run was seen to log a total one float32 step
    apart while every term and weight was bit-equal (docs/reliability.md, Determinism)."""
    assert (a / "metrics.json").read_bytes() == (b / "metrics.json").read_bytes()
    (ha, ta), (hb, tb) = (_without_totals(json.loads((p / "history.json").read_text())) for p in (a, b))
    assert ha == hb
    assert len(ta) == len(tb)
    for x, y in zip(ta, tb):
        for u, v in zip(x, y):
            assert (u is None) == (v is None) and (u is None or abs(u - v) <= 4 * np.spacing(np.float32(abs(u))))
    for wa, wb in zip(run_weights(a), run_weights(b), strict=True):
        assert wa.dtype == wb.dtype and wa.tobytes() == wb.tobytes()
