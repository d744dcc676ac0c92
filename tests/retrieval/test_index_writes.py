"""`python -m cvs_tf.index build`: what --overwrite may replace, a folder appearing at --out, a concurrent build, kill -9 at each step."""

import json
import shutil

import pytest

from cvs_tf.cli.index import main as index_cli
from cvs_tf.retrieval.index import Index
from cvs_tf.utils.cli import run_cli
from cvs_tf.utils.lock import RunDirLock
from cvs_tf.utils.output import lock_path
from tests.helpers import dir_tree, one_error_line, run_killed


def _argv(tiny_export, out, *extra):
    run, export, ds = tiny_export
    return ["build", str(export), "--features", str(ds), "--modality", "image", "--out", str(out), *map(str, extra)]


@pytest.fixture(scope="module")
def built(tiny_export, tmp_path_factory):
    """An index of the tiny export's test images, built once (copied by the tests that change it)."""
    out = tmp_path_factory.mktemp("index") / "ix"
    assert run_cli(index_cli, _argv(tiny_export, out)) == 0
    return out


def _old_index(built, where):
    shutil.copytree(built, where)
    manifest = json.loads((where / "index.json").read_text())
    manifest["old"] = True
    (where / "index.json").write_text(json.dumps(manifest))
    return (where / "index.json").read_bytes()


def test_overwrite_never_replaces_an_index_the_user_added_files_to(tiny_export, built, tmp_path, capsys):
    out = tmp_path / "out"
    _old_index(built, out)
    (out / "notes.txt").write_text("mine")
    before = dir_tree(tmp_path)
    one_error_line(capsys, run_cli(index_cli, _argv(tiny_export, out, "--overwrite")),
                   "it also holds notes.txt, not part of an index")
    assert dir_tree(tmp_path) == before
    (out / "notes.txt").unlink()
    assert run_cli(index_cli, _argv(tiny_export, out, "--overwrite")) == 0
    assert dir_tree(out) == dir_tree(built)


@pytest.mark.parametrize("user_files", [[], ["mine.txt"]])
def test_a_folder_made_at_out_during_the_build_is_never_replaced(tiny_export, tmp_path, capsys, monkeypatch,
                                                                user_files):
    """Was: deleted and replaced by the index."""
    out, build = tmp_path / "out", Index.build

    def user_makes_out(*args, **kwargs):
        out.mkdir(exist_ok=True)
        for name in user_files:
            (out / name).write_text("mine")
        return build(*args, **kwargs)

    monkeypatch.setattr(Index, "build", staticmethod(user_makes_out))
    one_error_line(capsys, run_cli(index_cli, _argv(tiny_export, out)),
                   "appeared or changed while the index was being written; left as it is")
    assert dir_tree(tmp_path) == {"out": None, **{f"out/{n}": b"mine" for n in user_files}}


def test_a_second_build_into_the_same_out_is_refused(tiny_export, tmp_path, capsys):
    out = tmp_path / "out"
    with RunDirLock(out, path=lock_path(out), transient=True):
        one_error_line(capsys, run_cli(index_cli, _argv(tiny_export, out)), "index output is in use by pid")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("point", [
    "output-aside",
    pytest.param("output-built", marks=pytest.mark.slow),
    pytest.param("output-swapped", marks=pytest.mark.slow),
])
def test_kill_9_during_index_overwrite_leaves_the_old_index_or_the_new_one(tiny_export, built, tmp_path, point):
    out = tmp_path / "out"
    old, new = _old_index(built, out), (built / "index.json").read_bytes()
    run_killed(["cvs_tf.index", *_argv(tiny_export, out, "--overwrite")], point)
    Index.load(out)  # a reader restores a cut swap
    assert (out / "index.json").read_bytes() == (new if point == "output-swapped" else old)
    left = [p.name for p in tmp_path.iterdir() if not p.name.startswith(".out.tmp-")]
    assert sorted(left) in (["out"], [".out.lock", "out"])  # the dead writer's temporary and lock: hidden
    assert run_cli(index_cli, _argv(tiny_export, out, "--overwrite")) == 0
    assert dir_tree(out) == dir_tree(built) and [p.name for p in tmp_path.iterdir()] == ["out"]
