"""Shared helpers of the `python -m cvs_tf.data` tests: run the CLI in-process, check a one-line error."""

from cvs_tf.cli.data import main
from cvs_tf.utils.cli import run_cli


def data_cli(argv, capsys):
    """``(exit code, stdout, stderr)`` of ``python -m cvs_tf.data ARGV``, run in-process."""
    code = run_cli(main, [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error(code, err, *fragments):
    """Exit 2, exactly one ``error:`` line, no traceback, and every fragment in it."""
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for f in fragments:
        assert f in err, (f, err)
