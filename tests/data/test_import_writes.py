"""`python -m cvs_tf.data import`: a folder appearing at --out, a concurrent import, kill -9 (also unreaped) and the next import."""

import numpy as np
import pytest

from cvs_tf.data.store import load_feature_set
from cvs_tf.utils.cli import run_cli
from cvs_tf.utils.lock import RunDirLock
from cvs_tf.utils.output import lock_path
from tests.helpers import dir_tree, make_toy_featureset, one_error_line, run_killed


@pytest.fixture
def layout(tmp_path):
    """A small generic layout (npz per modality and split, with ids) in its own folder."""
    fs = load_feature_set(make_toy_featureset(tmp_path / "set", modalities={"image": 8, "text": 6}, paired=True))
    root = tmp_path / "layout"
    root.mkdir()
    for m in fs.modalities:
        for s in ("train", "val", "test"):
            x = np.asarray(fs.x(m, s), np.float32)
            np.savez(root / f"{m}.{s}.npz", features=x, labels=np.asarray(fs.y(m, s)),
                     ids=np.array([f"{s}-{r}" for r in range(len(x))]))
    (root / "classes.txt").write_text("".join(f"{c}\n" for c in fs.classes))
    return root


def _import(argv):
    from cvs_tf.cli.data import main

    return run_cli(main, ["import", *map(str, argv)])


@pytest.mark.parametrize("user_files", [[], ["mine.txt"]])
def test_a_folder_made_at_out_during_the_import_is_never_replaced(layout, tmp_path, capsys, monkeypatch, user_files):
    """Was: deleted and replaced by the imported set."""
    from cvs_tf.data import store

    out, write = tmp_path / "outs" / "fs", store._write_modality

    def user_makes_out(*args, **kwargs):
        out.mkdir(exist_ok=True)
        for name in user_files:
            (out / name).write_text("mine")
        return write(*args, **kwargs)

    (tmp_path / "outs").mkdir()
    monkeypatch.setattr(store, "_write_modality", user_makes_out)
    one_error_line(capsys, _import([layout, "--out", out]), "appeared while it was being written; left as it is")
    assert dir_tree(tmp_path / "outs") == {"fs": None, **{f"fs/{n}": b"mine" for n in user_files}}


def test_a_second_import_into_the_same_out_is_refused(layout, tmp_path, capsys):
    out = tmp_path / "fs"
    with RunDirLock(out, path=lock_path(out), transient=True):
        one_error_line(capsys, _import([layout, "--out", out]), "feature set output is in use by pid")
    assert not out.exists() and not lock_path(out).exists()


@pytest.mark.parametrize("reaped", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_a_killed_import_leaves_nothing_after_the_next_import(layout, tmp_path, capsys, reaped):
    """Was: a killed import's temporary stayed after the next write (it was not reaped yet, so it looked alive)."""
    out = tmp_path / "outs" / "fs"
    proc = run_killed(["cvs_tf.data", "import", layout, "--out", out], "output-built" if reaped else "zombie:output-built")
    try:
        assert not out.exists() and sorted(p.name[:8] for p in out.parent.iterdir()) == [".fs.lock", ".fs.tmp-"]
        assert _import([layout, "--out", out]) == 0
    finally:
        if not reaped:
            proc.wait()
    assert [p.name for p in out.parent.iterdir()] == ["fs"]
    assert load_feature_set(out).modalities == ["image", "text"]
