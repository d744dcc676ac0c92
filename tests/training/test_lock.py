"""The run-directory lock: exclusive, non-blocking, names its holder's pid, and dies with its holder."""

import os
import signal
import subprocess
import sys
import time

import pytest

from cvs_tf.training.lock import RunDirLock, RunDirLockedError

# another process holding the lock the way RunDirLock does (plain fcntl: no TensorFlow import)
HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
os.ftruncate(fd, 0); os.pwrite(fd, str(os.getpid()).encode(), 0)
print("locked", flush=True)
time.sleep(120)
"""


def test_second_lock_is_refused_naming_the_holder_then_free_after_release(tmp_path):
    first = RunDirLock(tmp_path).acquire()
    assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())
    with pytest.raises(RunDirLockedError, match=f"in use by pid {os.getpid()}"):
        RunDirLock(tmp_path).acquire()
    first.release()
    assert (tmp_path / ".lock").read_text() == ""  # emptied: no stale pid for the next refusal
    with RunDirLock(tmp_path) as again:
        assert again.held
    assert not again.held


def test_a_lock_held_by_another_process_names_it_and_is_freed_by_kill_9(tmp_path):
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirLockedError) as exc:
            RunDirLock(tmp_path).acquire()
        msg = str(exc.value)
        assert f"pid {p.pid}" in msg and "\n" not in msg and str(tmp_path) in msg
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    t = time.monotonic()
    with RunDirLock(tmp_path):  # the kernel dropped the dead holder's lock; its stale pid does not matter
        assert time.monotonic() - t < 1.0
        assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())
