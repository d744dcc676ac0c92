"""`python -m cvs_tf.export`: what --overwrite may replace, a folder appearing at --out, a concurrent export, kill -9 at each step."""

import json
import shutil

import pytest

from cvs_tf.cli.export import main as export_cli
from cvs_tf.serving.export import Export, export_sha256
from cvs_tf.utils.cli import run_cli
from cvs_tf.utils.lock import RunDirLock
from cvs_tf.utils.output import lock_path
from tests.helpers import dir_tree, one_error_line, run_killed


def _old_export(tiny_export, where):
    """A copy of the tiny export that differs from a fresh one by its export.json bytes (still a cvs_tf export)."""
    shutil.copytree(tiny_export[1], where)
    manifest = json.loads((where / "export.json").read_text())
    manifest["old"] = True
    (where / "export.json").write_text(json.dumps(manifest))
    return export_sha256(where)


def test_overwrite_never_replaces_an_export_the_user_added_files_to(tiny_export, tmp_path, capsys):
    out = tmp_path / "out"
    _old_export(tiny_export, out)
    (out / "notes.txt").write_text("mine")
    before = dir_tree(tmp_path)
    one_error_line(capsys, run_cli(export_cli, [str(tiny_export[0]), "--out", str(out), "--overwrite"]),
                   "it also holds notes.txt, not part of an export")
    assert dir_tree(tmp_path) == before
    (out / "notes.txt").unlink()
    assert run_cli(export_cli, [str(tiny_export[0]), "--out", str(out), "--overwrite"]) == 0
    assert export_sha256(out) == export_sha256(tiny_export[1])
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.parametrize("user_files", [[], ["mine.txt"]])
def test_a_folder_made_at_out_during_the_export_is_never_replaced(tiny_export, tmp_path, capsys, monkeypatch,
                                                                  user_files):
    """Was: deleted and replaced by the export."""
    from cvs_tf.serving import export as export_mod

    out, write = tmp_path / "out", export_mod._write_savedmodel

    def user_makes_out(*args, **kwargs):
        out.mkdir(exist_ok=True)
        for name in user_files:
            (out / name).write_text("mine")
        return write(*args, **kwargs)

    monkeypatch.setattr(export_mod, "_write_savedmodel", user_makes_out)
    one_error_line(capsys, run_cli(export_cli, [str(tiny_export[0]), "--out", str(out)]),
                   "appeared or changed while the export was being written; left as it is")
    assert dir_tree(tmp_path) == {"out": None, **{f"out/{n}": b"mine" for n in user_files}}


def test_a_second_export_into_the_same_out_is_refused(tiny_export, tmp_path, capsys):
    """Was: two concurrent exports both exited 0 and one silently replaced the other."""
    out = tmp_path / "out"
    with RunDirLock(out, path=lock_path(out), transient=True):  # the first export, still running
        one_error_line(capsys, run_cli(export_cli, [str(tiny_export[0]), "--out", str(out)]),
                       "export output is in use by pid")
        assert [p.name for p in tmp_path.iterdir()] == [lock_path(out).name]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("point", [
    "output-aside",
    pytest.param("output-built", marks=pytest.mark.slow),
    pytest.param("output-swapped", marks=pytest.mark.slow),
])
def test_kill_9_during_export_overwrite_leaves_the_old_export_or_the_new_one(tiny_export, tmp_path, point):
    """Was: a kill between the renames left the old export in a temporary that the next write deleted."""
    out = tmp_path / "out"
    old, new = _old_export(tiny_export, out), export_sha256(tiny_export[1])
    run_killed(["cvs_tf.export", tiny_export[0], "--out", out, "--overwrite"], point)
    assert Export(out).sha256 == (new if point == "output-swapped" else old)  # a reader restores a cut swap
    left = [p.name for p in tmp_path.iterdir() if not p.name.startswith(".out.tmp-")]
    assert sorted(left) in (["out"], [".out.lock", "out"])  # the dead writer's temporary and lock: hidden
    assert run_cli(export_cli, [str(tiny_export[0]), "--out", str(out), "--overwrite"]) == 0
    assert export_sha256(out) == new and [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.slow
def test_two_exports_started_together_one_wins_the_other_is_refused(tiny_export, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "-m", "cvs_tf.export", str(tiny_export[0]), "--out", str(tmp_path / "out")]
    procs = [subprocess.Popen(cmd, cwd=repo, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = sorted((p.wait(timeout=300), p.stderr.read()) for p in procs)
    assert [code for code, _ in results] == [0, 2], results
    assert "in use by pid" in results[1][1] or "exists and is not empty" in results[1][1]
    assert export_sha256(tmp_path / "out") == export_sha256(tiny_export[1])
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
