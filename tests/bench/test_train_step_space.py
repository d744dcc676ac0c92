"""`python -m bench --only train_step --space SPACE`: one space measured alone; bad values are one `error:` line, exit 2."""

import subprocess
import sys

import pytest

from bench import DOCS_PERFORMANCE
from bench.__main__ import main
from bench.train_step import SPACE_NAMES, settings
from cvs_tf.utils.cli import run_cli


@pytest.mark.parametrize("quick", [False, True])
def test_space_selects_that_space_alone(quick):
    assert SPACE_NAMES == ("cvs", "mcvs", "rvs")
    for space, label in zip(SPACE_NAMES, ("CVS+attention", "M-CVS stage 4", "RVS stage 4")):
        assert [s[0] for s in settings(quick, space)["spaces"]] == [label]
    assert len(settings(False)["spaces"]) == 3


@pytest.mark.parametrize("argv,needle", [
    (["--only", "train_step", "--space", "vse"], "invalid choice: 'vse'"),
    (["--only", "growth", "--space", "cvs"], "--space applies to train_step"),
])
def test_bad_space_is_one_error_line(argv, needle, capsys):
    assert run_cli(main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err and err.count("\n") == 1


def test_bad_space_exit_status_from_the_command_line():
    proc = subprocess.run([sys.executable, "-m", "bench", "--only", "train_step", "--space", "xyz"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_quick_run_of_one_space_leaves_docs_alone(capsys):
    before = DOCS_PERFORMANCE.read_text()
    assert main(["--quick", "--only", "train_step", "--space", "rvs"]) == 0
    out = capsys.readouterr().out
    assert "RVS stage 4" in out and "CVS+attention" not in out and "M-CVS" not in out
    assert DOCS_PERFORMANCE.read_text() == before
