"""MirroredStrategy on 2 logical CPU devices equals one device on the same global batch (CVS, M-CVS stage 2, RVS stage 2).

The logical devices must be configured before TensorFlow sets up its devices, so each test runs
``tests/training/distributed_helper.py`` in a fresh process and reads its JSON lines. Slow lane:
the helper process traces and runs several models (about a minute on 2 shared cores).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOL = 1e-5

pytestmark = pytest.mark.slow


def helper(*args: str, timeout: int = 900) -> list[dict]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-m", "tests.training.distributed_helper", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def exact():
    return {r["case"]: r for r in helper("exact")}


@pytest.mark.parametrize("case", ["cvs", "mcvs", "rvs"])
def test_one_mirrored_step_equals_one_device_for_every_loss_term_and_gradient(exact, case):
    r = exact[case]
    assert r["replicas"] == 2 and r["batch_map"], r      # replica r holds rows [r*B/2, (r+1)*B/2) of the batch
    assert r["loss_terms"] >= 6 and r["loss_diff"] <= TOL, r   # every term, on every replica
    assert r["none_match"] and r["grad_diff"] <= TOL < r["grad_scale"], r  # summed over replicas = one device
    assert r["step_weight_diff"] <= TOL < r["step_change"] and r["step_log_diff"] <= TOL, r  # Keras' real step
    if case != "cvs":  # a later stage: the frozen parts stay bit-identical under the mirrored step
        assert r["frozen"] > 0 and r["frozen_changed"] == 0, r


def test_without_the_all_gather_each_replica_mines_its_own_rows_and_the_loss_differs(exact):
    assert all(r["nogather_loss_diff"] > 1e-3 for r in exact.values()), exact


def test_mixed_bfloat16_and_xla_under_mirrored():
    (r,) = helper("mixed")
    assert r["policy"] == "mixed_bfloat16" and r["jit"] == "loss" and r["batch_map"] and r["none_match"], r
    assert r["loss_diff"] <= TOL, r                        # the float32 loss terms of the same rows
    # bfloat16 branches: the two halves' gradients are summed in another order than one device's
    assert r["grad_diff"] <= 1e-2 * r["grad_scale"] and r["step_weight_diff"] <= 0.1 * r["step_change"], r


def test_trainer_mirrored_matches_one_device_and_resumes_exactly(tmp_path):
    (r,) = helper("trainer", str(tmp_path))
    hist = r["history"]
    for run in ("mirrored", "resumed"):
        assert [len(s["epochs"]) for s in hist[run]] == [len(s["epochs"]) for s in hist["default"]]
        assert [s["best_epoch"] for s in hist[run]] == [s["best_epoch"] for s in hist["default"]]
        for a, b in zip(hist[run], hist["default"]):
            for ea, eb in zip(a["epochs"], b["epochs"]):
                assert ea.keys() == eb.keys()
                assert all(abs(ea[k] - eb[k]) <= 1e-4 for k in ea), (run, ea, eb)
        assert abs(r["val"][run] - r["val"]["default"]) <= 1e-4
    # every scalar of every epoch once, as in the uninterrupted run
    assert r["tensorboard"]["resumed"] == r["tensorboard"]["mirrored"] and len(r["tensorboard"]["mirrored"]) > 20
    assert hist["resumed"] == hist["mirrored"]           # interrupted after epoch 1, resumed: the same run
