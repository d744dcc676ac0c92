"""The cross-batch memory under MirroredStrategy on 2 logical CPU devices: the same queue, losses and weights as one device.

Each replica enqueues the all-gathered global batch, so both copies of every queue variable hold
the one-device queue. The devices are split before TensorFlow starts, so the check runs
``tests/models/xbm_mirrored_helper.py`` in a fresh process (slow lane: it traces four models).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOL = 1e-4

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cases():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-m", "tests.models.xbm_mirrored_helper"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def test_both_xla_modes_ran_on_two_replicas(cases):
    assert [c["jit"] for c in cases] == ["off", "loss"] and all(c["replicas"] == 2 for c in cases), cases


@pytest.mark.parametrize("i", [0, 1], ids=["no_xla", "xla"])
def test_the_mirrored_queue_equals_the_one_device_queue_on_every_replica(cases, i):
    c = cases[i]
    assert c["queue_vars"] == 3 * 7 and c["replicas_differ"] == 0, c   # 3 pairs: 2 sides x (rows, labels), 3 counters
    assert c["queue_diff"] <= TOL, c
    assert c["fill"] == 24 and c["steps"] == 3 and c["labels_seen"] == [0, 1, 2, 3], c   # 3 batches of 16 into 24 rows
    assert max(c["log_diff"]) <= TOL and c["weight_diff"] <= TOL, c    # steps 2 and 3 read the memory
