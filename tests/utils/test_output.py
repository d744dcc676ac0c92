"""Writing an output safely (cvs_tf.utils.output): what --overwrite may replace, outputs appearing meanwhile, one writer, kill -9 at every step."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cvs_tf.utils.atomic import FAULT_ENV, atomic_dir, rename_noreplace
from cvs_tf.utils.lock import RunDirLock
from cvs_tf.utils.output import OutputDir, OutputFiles, lock_path, previous_path, recover_previous
from tests.utils import output_writer
from tests.utils.output_writer import kind, write

WRITER = Path(output_writer.__file__)
POINTS = ("output-built", "output-aside", "output-swapped")


def _tree(d: Path) -> dict:
    return {str(p.relative_to(d)): p.read_bytes() if p.is_file() else None for p in sorted(d.rglob("*"))}


def _tag(target: Path) -> str | None:
    """The TAG of a complete output at ``target`` (None when there is none)."""
    if not target.is_dir():
        return None
    assert sorted(p.name for p in target.iterdir()) == ["data.txt", "thing.json"], "an incomplete output"
    return (target / "data.txt").read_text()


# --------------------------------------------------------------------------- what may be replaced


@pytest.mark.parametrize("files,needle", [
    ({"thing.json": '{"format": "someone.else", "files": []}', "mine.txt": "x"}, "not a 'test.thing' manifest"),
    ({"thing.json": "not json", "mine.txt": "x"}, "not valid JSON"),
    ({"thing.json": '{"format": "test.thing", "files": ["data.txt"]}', "data.txt": "old", "notes.txt": "mine"},
     "also holds notes.txt"),
    ({"thing.json": '{"format": "test.thing", "files": 3}', "data.txt": "old"}, "does not list its files"),
    ({"mine.txt": "x"}, "no thing.json"),
])
def test_overwrite_replaces_only_an_output_of_its_kind_holding_nothing_else(tmp_path, files, needle):
    target = tmp_path / "out"
    target.mkdir()
    for name, text in files.items():
        (target / name).write_text(text)
    before = _tree(tmp_path)
    with pytest.raises(ValueError, match="exists and is not empty .*--overwrite"):
        write(target, "new", overwrite=False)
    with pytest.raises(ValueError, match=f"not a thing written by cvs_tf .*{needle}.*refusing to replace it"):
        write(target, "new")
    assert _tree(tmp_path) == before


def test_overwrite_replaces_an_output_of_its_kind_and_an_empty_directory(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    write(target, "one", overwrite=False)
    write(target, "two")
    assert _tag(target) == "two" and [p.name for p in tmp_path.iterdir()] == ["out"]


# --------------------------------------------------------------------------- outputs appearing meanwhile


@pytest.mark.parametrize("user_files", [[], ["mine.txt"]])
def test_an_output_appearing_while_it_is_built_is_never_replaced(tmp_path, user_files):
    """Was: a folder the user made at --out during an export, index build or import was deleted."""
    target = tmp_path / "out"
    with pytest.raises(ValueError, match="appeared or changed while the thing was being written; left as it is"):
        with OutputDir(target, kind()) as out, out.build() as tmp:
            (tmp / "thing.json").write_text('{"format": "test.thing", "files": []}')
            target.mkdir()  # the user, meanwhile (an empty directory too: a plain rename would replace it)
            for name in user_files:
                (target / name).write_text("mine")
    assert _tree(tmp_path) == {"out": None, **{f"out/{n}": b"mine" for n in user_files}}


@pytest.mark.parametrize("change", ["add a file to it", "replace it"])
def test_an_output_changed_while_it_is_replaced_is_left_as_it_is(tmp_path, change):
    target = tmp_path / "out"
    write(target, "old")
    with pytest.raises(ValueError, match="appeared or changed"):
        with OutputDir(target, kind(), overwrite=True) as out, out.build() as tmp:
            (tmp / "thing.json").write_text('{"format": "test.thing", "files": []}')
            if change == "replace it":
                os.rename(target, tmp_path / "moved")
                target.mkdir()
            (target / "mine.txt").write_text("mine")
    assert (target / "mine.txt").read_text() == "mine"
    assert not previous_path(target).exists() and not lock_path(target).exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_atomic_dir_without_overwrite_never_replaces_a_directory_that_appeared(tmp_path):
    """The feature-set writer under import, convert and synth."""
    target = tmp_path / "fs"
    with pytest.raises(FileExistsError, match="appeared while it was being written"), atomic_dir(target) as tmp:
        (tmp / "manifest.json").write_text("{}")
        target.mkdir()
    assert [p.name for p in tmp_path.iterdir()] == ["fs"] and list(target.iterdir()) == []


def test_rename_noreplace_refuses_an_empty_directory_and_a_file(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "empty").mkdir()
    (tmp_path / "f").write_text("x")
    for dst in ("empty", "f"):
        with pytest.raises(FileExistsError):
            rename_noreplace(tmp_path / "a", tmp_path / dst)
    rename_noreplace(tmp_path / "a", tmp_path / "b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "empty", "f"]


# --------------------------------------------------------------------------- one writer


def test_a_second_writer_is_refused_naming_the_first_and_the_lock_goes_with_the_writer(tmp_path):
    target = tmp_path / "out"
    with OutputDir(target, kind()):
        with pytest.raises(ValueError, match=rf"out: thing output is in use by pid {os.getpid()}"):
            write(target, "second")
        assert lock_path(target).exists()
    assert not lock_path(target).exists()
    write(target, "after")
    assert _tag(target) == "after"
    files = [tmp_path / "t.md", tmp_path / "t.csv"]
    with OutputFiles(files, noun="table", recognise=lambda p: True):
        with pytest.raises(ValueError, match="table output is in use"), OutputFiles(files, noun="table",
                                                                                  recognise=lambda p: True):
            pass


def test_a_lock_file_left_by_a_killed_writer_is_taken_over_and_removed(tmp_path):
    target = tmp_path / "out"
    lock_path(target).write_text("999999999\n")  # what kill -9 leaves: the file, without the kernel's lock
    write(target, "new")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


# --------------------------------------------------------------------------- kill -9


def _killed_writer(target: Path, tag: str, point: str) -> None:
    proc = subprocess.run([sys.executable, WRITER, target, tag], env={**os.environ, FAULT_ENV: point},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr


@pytest.mark.parametrize("point", POINTS)
def test_kill_9_at_every_step_of_an_overwrite_leaves_the_old_output_or_the_new_one(tmp_path, point):
    """Was: a kill between the renames left the old export in a temporary, which the next write deleted."""
    target = tmp_path / "out"
    write(target, "old")
    _killed_writer(target, "new", point)
    prev = previous_path(target)
    if point == "output-aside":  # the old output is kept under a name no cleanup takes for a temporary
        assert _tag(target) is None and _tag(prev) == "old"
    else:
        assert _tag(target) == ("old" if point == "output-built" else "new")
    write(tmp_path / "other", "x")  # another write in the same folder cleans the temporary, not the old output
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    recover_previous(target, kind())  # what a reader does first
    assert _tag(target) == {"output-built": "old", "output-aside": "old", "output-swapped": "new"}[point]
    write(target, "next")
    assert _tag(target) == "next"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "out"]


@pytest.mark.parametrize("point", POINTS)
def test_the_next_writer_restores_or_finishes_a_killed_swap(tmp_path, point):
    target = tmp_path / "out"
    write(target, "old")
    _killed_writer(target, "new", point)
    with OutputDir(target, kind(), overwrite=True):  # recovery happens under the lock, before the checks
        assert _tag(target) == ("new" if point == "output-swapped" else "old")
        assert not previous_path(target).exists()


def test_a_previous_output_that_is_not_ours_is_never_touched(tmp_path):
    target, prev = tmp_path / "out", previous_path(tmp_path / "out")
    prev.mkdir()
    (prev / "mine.txt").write_text("mine")
    recover_previous(target, kind())
    write(target, "new")
    assert (prev / "mine.txt").read_text() == "mine" and _tag(target) == "new"


def test_an_unreaped_killed_writer_counts_as_dead_and_its_temporary_goes(tmp_path):
    """Was: a killed import's temporary stayed after the next write (its zombie looked alive)."""
    proc = subprocess.Popen([sys.executable, WRITER, tmp_path / "out", "new"], env={**os.environ, FAULT_ENV: POINTS[0]})
    try:
        deadline = time.monotonic() + 60
        while Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the writer never reached its fault point"
            time.sleep(0.05)
        assert [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
        write(tmp_path / "out", "next")  # while the killed writer is still a zombie
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    finally:
        proc.wait()


def test_files_are_the_old_or_the_new_ones_after_a_kill(tmp_path):
    files = {"md": tmp_path / "t.md", "json": tmp_path / "t.json"}
    script = ("import sys, types; from pathlib import Path; m = types.ModuleType('cvs_tf'); "
              f"m.__path__ = [{str(output_writer.PACKAGE)!r}]; sys.modules['cvs_tf'] = m\n"
              "from cvs_tf.utils.output import OutputFiles\n"
              f"paths = [Path(p) for p in {[str(p) for p in files.values()]!r}]\n"
              "with OutputFiles(paths, noun='table', recognise=lambda p: True, overwrite=True) as out:\n"
              "    for p in paths:\n"
              "        with out.write(p) as tmp: tmp.write_text('new')\n")
    for point in ("output-built", "output-swapped"):
        for p in files.values():
            p.write_text("old")
        proc = subprocess.run([sys.executable, "-c", script], env={**os.environ, FAULT_ENV: point}, timeout=60)
        assert proc.returncode == -9
        assert [files["md"].read_text(), files["json"].read_text()] == ["old" if point == "output-built" else "new",
                                                                       "old"]
    with OutputFiles(files.values(), noun="table", recognise=lambda p: True, overwrite=True) as out:
        with out.write(files["md"]) as tmp:
            tmp.write_text("next")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json", "t.md"]


def test_refusals_leave_no_lock_and_no_directory_they_made(tmp_path):
    target = tmp_path / "a" / "b" / "out"
    with pytest.raises(RuntimeError), OutputDir(target, kind()):
        raise RuntimeError("the command failed before writing")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        write(tmp_path / "file" / "out", "x")
    with RunDirLock(tmp_path / "x", path=lock_path(tmp_path / "x"), transient=True):
        with pytest.raises(ValueError, match="in use"):
            write(tmp_path / "x", "y")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.parametrize("name", [".", "..", "sub/.."])
def test_the_current_or_parent_folder_is_not_an_output(tmp_path, monkeypatch, name):
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    with pytest.raises(ValueError, match="name a new directory to write"):
        write(Path(name), "x", overwrite=False)
    assert [p.name for p in tmp_path.iterdir()] == ["sub"] and not list((tmp_path / "sub").iterdir())
