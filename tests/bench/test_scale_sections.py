"""The scale and kind_memory sections render their measurements side by side (made-up figures, no run)."""

from bench import kind_memory, scale

GIB = 1 << 30


def _measurement(batch, peak_gib, raw_gib=1.25):
    """A made-up scale measurement (not a result): what bench.scale.measure returns."""
    return {"batch": batch, "raw_bytes": int(raw_gib * GIB), "raw_trainval_bytes": int(GIB), "train_items": 81600,
            "rss_tf": GIB // 2, "peak_rss": int(peak_gib * GIB), "rss_end": GIB, "epoch_s": 60.0, "first_step_s": 9.0,
            "step_median_s": 0.5, "steps": 29, "run_s": 120.0, "jit": "full", "gen_s": 16.0, "scale": 1.0,
            "ratio": peak_gib / raw_gib, "phases": {"load": (GIB, GIB), "epoch": (int(peak_gib * GIB), GIB)}}


def test_scale_section_puts_both_batches_side_by_side_with_their_own_goal():
    text = scale.markdown([_measurement(128, 2.4), _measurement(1024, 3.0)], "python -m bench", {})
    assert "| figure | batch 128 | batch 1024 |" in text
    assert "**1.92** (goal ≤ 2: met)" in text and "**2.40** (goal ≤ 2.5: met)" in text
    assert "| epoch | 2.4" in text and "(1.92), " in text and "(2.40), " in text
    assert "**2.80** (goal ≤ 2.5: missed)" in scale.markdown([_measurement(1024, 3.5)], "x", {})


def test_kind_memory_section_lists_declared_against_xla():
    rows = [{"kind": "semihard_triplet", "order": "B²", "B": 256, "xla": 14_000_000, "declared": 16_515_072}]
    text = kind_memory.markdown(rows, "python -m bench --only kind_memory")
    assert "| semihard_triplet | B² | 256 | 13.4 MiB | 15.8 MiB | 1.18 | 214 |" in text
