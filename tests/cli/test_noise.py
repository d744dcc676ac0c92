"""Quiet command lines: no TensorFlow start-up noise unless --verbose, a closed pipe ends quietly, one-line KeyError."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cvs_tf.utils.cli import run_cli

ROOT = Path(__file__).resolve().parents[2]
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports `yes | head -1`
NOISE = ("cuInit", "oneDNN", "absl::InitializeLog", "cudart_stub", "cpu_feature_guard", "rebuild TensorFlow")

SAMPLE = """WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796113987.054353    6737 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
I0000 00:00:1796113987.136308    6737 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU instructions in performance-critical operations.
To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.
2024-01-02 03:04:05.678901: I tensorflow/core/util/port.cc:153] oneDNN custom operations are on.
E0000 00:00:1796113993.191168    6737 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error
/x/y.py:3: UserWarning: a real Python warning
F0000 00:00:1796113993.191168    6737 x.cc:1] a fatal native line
"""


def _cli(*args, env=None, **kw):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"} | (env or {})
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=300, **kw)


def test_native_start_up_lines_are_dropped_and_everything_else_kept():
    from cvs_tf import _startup

    kept = _startup.drop_native_noise(SAMPLE)
    assert kept.splitlines() == ["/x/y.py:3: UserWarning: a real Python warning",
                                 "F0000 00:00:1796113993.191168    6737 x.cc:1] a fatal native line"]


def test_filtered_stderr_keeps_real_text_and_replays_everything_on_failure(capfd):
    from cvs_tf import _startup

    with _startup.filtered_stderr():
        os.write(2, SAMPLE.encode())
    err = capfd.readouterr().err
    assert "UserWarning" in err and not any(n in err for n in NOISE)
    with pytest.raises(ImportError), _startup.filtered_stderr():
        os.write(2, SAMPLE.encode())
        raise ImportError("broken install")
    assert capfd.readouterr().err == SAMPLE                       # a failed import keeps every clue


@pytest.mark.parametrize("argv, module", [
    (["python", "-m", "cvs_tf.train", "--epochs", "1"], "cvs_tf.train"),
    (["python", "-u", "-X", "importtime", "-m", "experiments.baselines"], "experiments.baselines"),
    (["python", "-Bm", "cvs_tf.data", "inspect", "tux12"], "cvs_tf.data"),
    (["python", "-m", "pytest", "-q"], None),
    (["python", "-c", "import cvs_tf", "-m", "cvs_tf.train"], None),
    (["python", "script.py", "-m", "cvs_tf.train"], None),
    (["python"], None),
])
@pytest.mark.trains
def test_cli_module_is_read_from_the_interpreter_command_line(argv, module):
    from cvs_tf import _startup

    assert _startup.cli_module(argv) == module


def test_every_cli_accepts_verbose_before_or_after_a_subcommand():
    from cvs_tf.cli import data, evaluate, train
    from cvs_tf.demo import parse_args as demo_args
    from experiments import baselines
    from experiments.__main__ import parse_args as experiments_args

    assert train.parse_args(["--verbose"]).verbose and not train.parse_args([]).verbose
    assert evaluate.parse_args(["run", "--verbose"]).verbose
    assert demo_args(["--verbose"]).verbose and baselines.parser().parse_args(["--verbose"]).verbose
    for argv in (["--verbose", "inspect", "tux12"], ["inspect", "tux12", "--verbose"]):
        assert data.parse_args(argv).verbose
    assert not data.parse_args(["inspect", "tux12"]).verbose
    assert experiments_args(["--verbose", "list"]).verbose and experiments_args(["list", "--verbose"]).verbose
    assert not experiments_args(["list"]).verbose


def test_a_command_that_starts_tensorflow_prints_only_its_error_line(tmp_path):
    """`evaluate` imports TensorFlow before it finds the run missing: stderr is the one error line."""
    r = _cli("cvs_tf.evaluate", str(tmp_path / "nope"), env={"TF_CPP_MIN_LOG_LEVEL": "2"})
    assert r.returncode == 2
    assert r.stderr.splitlines() == [f"error: {tmp_path / 'nope'}: no such run directory"], r.stderr


@pytest.mark.slow
def test_verbose_keeps_tensorflow_s_own_lines(tmp_path):
    r = _cli("cvs_tf.evaluate", str(tmp_path / "nope"), "--verbose")
    assert r.returncode == 2 and r.stderr.splitlines()[-1].startswith("error: ")
    if len(r.stderr.splitlines()) == 1:
        pytest.skip("this machine's TensorFlow prints nothing at start-up: nothing to show")
    assert any(n in r.stderr for n in NOISE)


@pytest.mark.slow
@pytest.mark.trains
def test_training_prints_no_cuinit_or_banner(tmp_path):
    from tests.helpers import make_toy_featureset

    ds = make_toy_featureset(tmp_path / "ds", modalities={"image": 6, "text": 5}, n_classes=3, n_train=12, n_test=6)
    (tmp_path / "c.json").write_text('{"model": {"dim": 8}}')
    r = _cli("cvs_tf.train", "--dataset", str(ds), "--config", str(tmp_path / "c.json"), "--out", str(tmp_path / "r"),
             "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "8", "--no-jit", "--early-stopping", "none")
    assert r.returncode == 0, r.stderr[-2000:]
    assert not any(n in r.stderr for n in NOISE), r.stderr


def test_closed_pipe_ends_quietly():
    """`... | head -1`: the reader is gone before the command writes; no `error:` line, no traceback."""
    p = subprocess.Popen([sys.executable, "-m", "cvs_tf.data", "inspect", "tux12"], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()                                            # what `head -1` does after its line
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == EXIT_BROKEN_PIPE and err == ""


def test_shell_pipe_into_head_prints_nothing_on_stderr():
    r = subprocess.run(f"{sys.executable} -m cvs_tf.data inspect tux12 | head -1", shell=True, cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.count("\n") == 1 and r.stderr == ""


def test_broken_pipe_in_process_is_quiet(capsys):
    def main(argv):
        print("a line")
        raise BrokenPipeError(32, "Broken pipe")

    assert run_cli(main, []) == EXIT_BROKEN_PIPE
    assert capsys.readouterr().err == ""


def test_key_error_is_still_one_line_and_says_what_it_was(capsys):
    def main(argv):
        raise KeyError("stages\nand more")

    assert run_cli(main, []) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: missing key ") and "KeyError" in err
