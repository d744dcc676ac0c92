"""Atomic writes (cvs_tf.utils.atomic): success, failure leaves the target untouched, overwrite swap, stale temporaries."""

import json
import os
import socket
import stat
import subprocess
import sys

import numpy as np
import pytest

from cvs_tf.utils import atomic
from cvs_tf.utils.atomic import (
    atomic_dir,
    atomic_file,
    atomic_path,
    make_temporary,
    make_temporary_file,
    remove_stale_temporaries,
    temporary_of,
    write_json_atomic,
)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _entries(d):
    return sorted(p.name for p in d.iterdir())


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class Boom(Exception):
    pass


# --------------------------------------------------------------------------- files


def test_atomic_file_writes_the_target_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "a.txt"  # the parent is made
    with atomic_file(target) as f:
        f.write("hello\n")
        assert not target.exists()  # nothing at the target until the block ends
        assert temporary_of(os.path.basename(f.name)) == "a.txt"
    assert target.read_text() == "hello\n"
    assert _entries(target.parent) == ["a.txt"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()  # as a plain open(..., "w")


def test_atomic_file_error_leaves_the_old_target_and_no_temporary(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    with pytest.raises(Boom), atomic_file(target, "wb") as f:
        f.write(b"half of the new")
        raise Boom
    assert target.read_bytes() == b"old"
    assert _entries(tmp_path) == ["a.bin"]


def test_atomic_file_refuses_other_modes(tmp_path):
    with pytest.raises(ValueError, match="mode"), atomic_file(tmp_path / "a", "a"):
        pass
    assert _entries(tmp_path) == []


def test_atomic_path_keeps_a_suffix_for_writers_that_read_the_name(tmp_path):
    target = tmp_path / "model.keras"
    with atomic_path(target, suffix=".keras") as tmp:
        assert tmp.name.endswith(".keras") and tmp.parent == tmp_path and tmp.name != target.name
        tmp.write_text("model")
    assert target.read_text() == "model" and _entries(tmp_path) == ["model.keras"]
    with pytest.raises(ValueError, match="suffix"):
        make_temporary_file(target, suffix="/x")


def test_write_json_atomic_uses_the_default_and_replaces(tmp_path):
    target = tmp_path / "m.json"
    target.write_text("{}")
    write_json_atomic(target, {"a": np.float32(0.5)}, default=lambda o: o.item())
    assert json.loads(target.read_text()) == {"a": 0.5} and target.read_text().endswith("\n")
    with pytest.raises(TypeError):
        write_json_atomic(target, {"a": object()})
    assert json.loads(target.read_text()) == {"a": 0.5} and _entries(tmp_path) == ["m.json"]


# --------------------------------------------------------------------------- directories


def test_atomic_dir_success_and_error(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(Boom), atomic_dir(target) as tmp:
        (tmp / "half").write_text("x")
        raise Boom
    assert _entries(tmp_path) == []  # no target, no temporary
    with atomic_dir(target) as tmp:
        (tmp / "f").write_text("new")
        assert not target.exists()
    assert (target / "f").read_text() == "new" and _entries(tmp_path) == ["out"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~_umask()  # as a plain mkdir


def test_atomic_dir_refuses_an_existing_target_unless_overwrite(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "f").write_text("old")
    with pytest.raises(FileExistsError), atomic_dir(target):
        pass
    with pytest.raises(Boom), atomic_dir(target, overwrite=True) as tmp:
        (tmp / "f").write_text("new")
        raise Boom
    assert (target / "f").read_text() == "old" and _entries(tmp_path) == ["out"]
    with atomic_dir(target, overwrite=True) as tmp:
        (tmp / "g").write_text("new")
    assert _entries(target) == ["g"] and _entries(tmp_path) == ["out"]  # swapped; the old one removed


def test_atomic_dir_moves_the_old_target_to_the_backup_and_removes_it_last(tmp_path, monkeypatch):
    target, backup = tmp_path / "checkpoint", tmp_path / ".checkpoint.old"
    target.mkdir()
    (target / "state").write_text("epoch 1")
    backup.mkdir()  # a stale backup of an earlier kill is replaced
    (backup / "state").write_text("epoch 0")
    renames = []
    real = os.replace

    def spy(src, dst):
        renames.append((os.path.basename(src), os.path.basename(dst)))
        real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", spy)
    with atomic_dir(target, overwrite=True, backup=backup) as tmp:
        (tmp / "state").write_text("epoch 2")
    assert renames[0] == ("checkpoint", ".checkpoint.old") and renames[1][1] == "checkpoint"
    assert (target / "state").read_text() == "epoch 2" and _entries(tmp_path) == ["checkpoint"]


def test_a_kill_between_the_renames_leaves_the_backup_whole(tmp_path, monkeypatch):
    target, backup = tmp_path / "checkpoint", tmp_path / ".checkpoint.old"
    target.mkdir()
    (target / "state").write_text("epoch 1")
    real = os.replace

    def die_on_second(src, dst):
        if os.path.basename(dst) == "checkpoint":
            raise KeyboardInterrupt  # stands in for the kill after the first rename
        real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", die_on_second)
    with pytest.raises(KeyboardInterrupt), atomic_dir(target, overwrite=True, backup=backup) as tmp:
        (tmp / "state").write_text("epoch 2")
    assert not target.exists() and (backup / "state").read_text() == "epoch 1"


# --------------------------------------------------------------------------- stale temporaries


def test_temporaries_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    host = atomic._host()
    dead = tmp_path / f".out.tmp-{_dead_pid()}@{host}-abcd_123"
    dead_file = tmp_path / f".model.keras.tmp-{_dead_pid()}@{host}-x1y2z3.keras"
    live = tmp_path / f".out.tmp-{os.getppid()}@{host}-abcd_123"
    remote = tmp_path / f".out.tmp-{_dead_pid()}@not-{socket.gethostname()}x-abcd_123"
    for d in (dead, live, remote):
        d.mkdir()
        (d / "part").write_bytes(b"\0" * 10)
    dead_file.write_bytes(b"half")
    tmp = make_temporary(tmp_path / "out")
    assert not dead.exists() and not dead_file.exists()
    assert live.is_dir() and remote.is_dir() and tmp.is_dir()
    assert str(os.getpid()) in tmp.name and temporary_of(tmp.name) == "out"
    assert remove_stale_temporaries(tmp_path / "out") == []  # our own temporary is alive


def test_temporary_of_knows_every_naming():
    assert temporary_of(".config.json.tmp-12@host-ab_12cd3") == "config.json"
    assert temporary_of(".model.keras.tmp-12@my-host.lan-ab12cd34.keras") == "model.keras"
    assert temporary_of(".checkpoint.tmp-a1b2c3d4") == "checkpoint"  # before names carried the pid
    assert temporary_of(".checkpoint.tmp") == "checkpoint"  # the hand-written name of earlier versions
    assert temporary_of("checkpoint") is None and temporary_of(".checkpoint.old") is None


@pytest.mark.parametrize("point", ["output-aside", "output-swapped"])
def test_a_kill_during_an_overwrite_keeps_the_old_directory_until_the_next_write_of_it(tmp_path, point):
    """The old directory waits as .NAME.previous (not a temporary: other writes leave it), then comes back."""
    from tests.utils.output_writer import PACKAGE

    target = tmp_path / "d"
    target.mkdir()
    (target / "v").write_text("old")
    script = ("import sys, types; m = types.ModuleType('cvs_tf'); "
              f"m.__path__ = [{str(PACKAGE)!r}]; sys.modules['cvs_tf'] = m\n"
              "from cvs_tf.utils.atomic import atomic_dir\n"
              f"with atomic_dir({str(target)!r}, overwrite=True) as tmp:\n"
              "    (tmp / 'v').write_text('new')\n")
    env = {**os.environ, atomic.FAULT_ENV: point}
    assert subprocess.run([sys.executable, "-c", script], env=env, timeout=60).returncode == -9
    kept = atomic.previous_path(target) if point == "output-aside" else target
    assert (kept / "v").read_text() == ("old" if point == "output-aside" else "new")
    with atomic_dir(tmp_path / "other") as tmp:  # another write in the folder removes temporaries only
        (tmp / "v").write_text("x")
    assert (kept / "v").read_text() in ("old", "new")
    with pytest.raises(Boom), atomic_dir(target, overwrite=True):
        raise Boom  # the old (or new) directory is back before anything is written
    assert (target / "v").read_text() == ("old" if point == "output-aside" else "new")
    with atomic_dir(target, overwrite=True) as tmp:
        (tmp / "v").write_text("next")
    assert _entries(tmp_path) == ["d", "other"]
