"""Checkpoint.save swaps a whole new checkpoint in; a kill between its renames is recovered; temporaries do not count as work."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from cvs_tf.training.checkpoint import Checkpoint
from cvs_tf.training.run_dir import clear_failed_start, has_completed_work, is_restartable
from cvs_tf.utils import atomic


class FakeModel:
    """What Checkpoint.save reads: weights and optimizer variables."""

    def __init__(self, value: float):
        self.value = value
        self.optimizer = SimpleNamespace(variables=[np.full(2, value)])

    def get_weights(self):
        return [np.full(3, self.value), np.full((2, 2), self.value)]


def _state(epoch):
    return {"stage": 0, "epoch": epoch, "wait": 0, "best_epoch": epoch, "best": 0.5, "history": []}


def test_save_then_validate_round_trips(tmp_path):
    ck = Checkpoint(tmp_path)
    ck.save(FakeModel(1.0), _state(1), [np.ones(3)])
    ck.save(FakeModel(2.0), _state(2), None)
    assert ck.validate()["epoch"] == 2 and ck.best_weights() is None
    assert ck._arrays(ck.dir / "weights.npz")[0].tolist() == [2.0, 2.0, 2.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_a_kill_between_the_renames_is_recovered_to_the_previous_epoch(tmp_path, monkeypatch):
    ck = Checkpoint(tmp_path)
    ck.save(FakeModel(1.0), _state(1), None)
    real = os.replace

    def killed(src, dst):
        if os.path.basename(dst) == "checkpoint":
            raise KeyboardInterrupt  # stands in for kill -9 after the first rename
        real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        ck.save(FakeModel(2.0), _state(2), None)
    monkeypatch.undo()
    assert not ck.exists() and (tmp_path / ".checkpoint.old" / "state.json").is_file()
    assert has_completed_work(tmp_path)  # the backup is a completed epoch: never wiped as a failed start
    ck.recover()
    assert ck.validate()["epoch"] == 1 and not (tmp_path / ".checkpoint.old").exists()


def test_temporaries_of_a_killed_first_epoch_are_a_failed_start(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    (tmp_path / "config.json").write_text(json.dumps({"resolved": {"package_version": "0"}}))
    for name in (f".checkpoint.tmp-{proc.pid}@{atomic._host()}-abcd1234",
                 f".config.json.tmp-{proc.pid}@{atomic._host()}-abcd1234"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "weights.npz").write_bytes(b"half")
    (tmp_path / ".lock").write_text("")
    assert not has_completed_work(tmp_path) and is_restartable(tmp_path)
    clear_failed_start(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock"]
    (tmp_path / "config.json").write_text(json.dumps({"resolved": {"package_version": "0"}}))
    (tmp_path / ".stages.tmp-1@h-abcd1234").mkdir()  # a temporary of something else is not ours to remove
    assert not is_restartable(tmp_path)
