"""Figure helpers: block counts (analytic vs built models), PCA, TensorBoard read-back, iteration timer, PNG writers."""

import math

import numpy as np
import pytest
import tensorflow as tf

from experiments.kinds.blocks import analytic_blocks, counted_blocks
from experiments.kinds.loss_curves import plot_loss, read_scalars, with_global_epoch
from experiments.kinds.projection import pca2
from experiments.kinds.timing import IterationTimer
from experiments.plots import plot_variant_bars

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("n, expected", [
    (2, dict(cvs_total=1, cvs_trained=1, mcvs_total=1, mcvs_trained=1, rvs_total=1, rvs_trained=1)),
    (5, dict(cvs_total=10, cvs_trained=10, mcvs_total=10, mcvs_trained=4, rvs_total=4, rvs_trained=1)),
    (6, dict(cvs_total=15, cvs_trained=15, mcvs_total=15, mcvs_trained=5, rvs_total=5, rvs_trained=1)),
])
def test_analytic_block_counts(n, expected):
    assert analytic_blocks(n) == expected


def test_built_models_have_the_analytic_block_counts():
    dims = {"image": 6, "text": 5, "video": 4, "audio": 3}
    rows = counted_blocks(dims, num_classes=3, dim=4, reference="text")
    assert [r["n"] for r in rows] == [2, 3, 4]
    for r in rows:
        for key, value in analytic_blocks(r["n"]).items():
            assert r[key] == value, (r["n"], key)
    # trainable parameters when the 4th modality (audio, 3-d) joins M-CVS: its branch (3*4+4 + 4*4+4 = 36)
    # and 3 blocks of 4 (4x4) matrices (W_a, W_b, W_ab, W_e) = 3 * 64 = 192 -> 228
    assert rows[-1]["mcvs_trainable_params"] == 36 + 3 * 64
    assert rows[-1]["rvs_modalities"] == ["image", "text", "audio", "video"]  # canonical order (#12 case 16)


def test_pca2_on_hand_made_points():
    t = np.linspace(-1, 1, 9)
    line = np.stack([t, 2 * t, np.zeros_like(t)], 1) + 5.0  # all variance on one direction
    xy, explained = pca2(line)
    assert explained == pytest.approx(1.0)
    assert np.allclose(np.abs(xy[:, 0]), np.abs(t) * math.sqrt(5))
    assert np.allclose(xy[:, 1], 0, atol=1e-12)
    rng = np.random.default_rng(0)
    _, half = pca2(rng.normal(size=(4000, 4)))
    assert half == pytest.approx(0.5, abs=0.05)  # isotropic 4-D: two components hold about half


def _log(root, stage_dir, split, tag, values):
    w = tf.summary.create_file_writer(str(root / "tensorboard" / stage_dir / split))
    with w.as_default():
        for step, v in enumerate(values, start=1):
            tf.summary.scalar(tag, v, step=step)
    w.close()


def test_scalars_are_read_back_from_tensorboard_and_stages_concatenated(tmp_path):
    _log(tmp_path, "stage1-image_text", "train", "loss/triplet", [0.9, 0.7, 0.5])
    _log(tmp_path, "stage1-image_text", "validation", "loss/triplet", [1.0, 0.8, 0.85])
    _log(tmp_path, "stage2-video", "train", "loss/triplet", [0.6, 0.4])
    rows = read_scalars(tmp_path)
    assert len(rows) == 8
    got = {(r["stage"], r["split"], r["step"]): r["value"] for r in rows}
    assert got[(1, "validation", 3)] == pytest.approx(0.85) and got[(2, "train", 2)] == pytest.approx(0.4)
    rows, starts = with_global_epoch(rows)
    assert starts == [0, 3]
    assert sorted(r["epoch"] for r in rows if r["stage"] == 2) == [4, 5]
    path = plot_loss(rows, "loss/triplet", tmp_path / "f.png", title="t", starts=starts)
    assert path.read_bytes()[:8] == PNG


def test_iteration_timer_skips_the_first_epoch_of_each_stage():
    t = IterationTimer()
    t.samples = [(0, 0, 2.0), (0, 1, 0.010), (0, 1, 0.012), (1, 0, 3.0), (1, 1, 0.004)]
    assert t.per_stage_ms(1) == {0: [pytest.approx(10.0), pytest.approx(12.0)], 1: [pytest.approx(4.0)]}


def test_variant_bars_png(tmp_path):
    path = plot_variant_bars([{"variant": "a", "mean": 0.4, "std": 0.02, "per_seed": [0.38, 0.42]},
                              {"variant": "b", "mean": 0.5, "std": float("nan"), "per_seed": [0.5]}],
                             tmp_path / "b.png", title="t", k=50)
    assert path.read_bytes()[:8] == PNG
