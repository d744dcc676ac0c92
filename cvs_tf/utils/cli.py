"""Command-line plumbing for every cvs_tf tool: one-line `error:` reporting (exit 2), `--verbose`, quiet broken pipes."""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

VERBOSE_HELP = "show TensorFlow's native log lines (silenced by default; see cvs_tf._startup)"
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for `yes | head -1`


class CliError(Exception):
    """A user-facing error: printed as one `error: ...` line, exit status 2, no traceback."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line `error:` messages (exit 2) instead of usage dumps, and a `--verbose` flag.

    ``--verbose`` is added to every parser (subcommands included, before or after the subcommand
    name). Its effect happens at ``import cvs_tf``, before TensorFlow is imported; ``args.verbose``
    records it.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # SUPPRESS: a subcommand's parser must not reset a --verbose given before the subcommand
        self.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)

    def parse_args(self, args=None, namespace=None):
        ns = super().parse_args(args, namespace)
        if not hasattr(ns, "verbose"):
            ns.verbose = False
        return ns

    def error(self, message: str):  # noqa: D401 - argparse API
        raise CliError(f"{self.prog}: {message}")


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run ``main(argv)``; user errors (CliError, ValueError such as ConfigError and FeatureSetError, OSError,
    KeyError) become one `error:` line and exit 2; a closed output pipe (``| head``) ends quietly with status 141.

    Anything else is a bug and keeps its traceback.
    """
    try:
        try:
            code = int(main(argv) or 0)
        except CliError as exc:
            code = _report(exc)
        except KeyError as exc:  # a missing entry of user data; a bug's KeyError still says what it was
            code = _report(_key_error(exc))
        except BrokenPipeError:
            raise
        except (ValueError, OSError) as exc:
            code = _report(exc)
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            code = 130
        sys.stdout.flush()  # a closed pipe shows up here, not at interpreter exit
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    return code


def _report(exc: BaseException | str) -> int:
    print(f"error: {_one_line(exc)}", file=sys.stderr)
    return 2


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again (Python docs, SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _key_error(exc: KeyError) -> str:
    key = exc.args[0] if exc.args else None
    return f"missing key {key!r} (KeyError)" if key is not None else "KeyError"


def _one_line(exc: BaseException | str) -> str:
    text = (exc if isinstance(exc, str) else str(exc)).strip() or type(exc).__name__
    return " ".join(text.split())


def positive_int(name: str):
    """An argparse ``type=`` for an integer >= 1; a bad value is one ``error:`` line naming ``name``."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise CliError(f"{name}: not an integer: {text!r}") from None
        if v < 1:
            raise CliError(f"{name}: must be >= 1, got {v}")
        return v

    return parse


def bounded_int(name: str, low: int, high: int):
    """An argparse ``type=`` for an integer in [low, high]; a bad value is one ``error:`` line naming ``name``.

    The parser carries its range as ``.bounds`` (tests walk every option's bounds).
    """

    def parse(text: str) -> int:
        if not re.fullmatch(r"\s*[+-]?\d+\s*", text):
            raise CliError(f"{name}: not an integer: {text!r}")
        v = int(text)
        if not low <= v <= high:
            raise CliError(f"{name}: must be in [{low}, {high}], got {v}")
        return v

    parse.bounds = (low, high)
    return parse


#: seeds: what numpy's and TensorFlow's seeding accept on every platform
SEED_BOUNDS = (0, 2**32 - 1)


def seed_int(name: str = "--seed"):
    """An argparse ``type=`` for a seed in [0, 2**32)."""
    return bounded_int(name, *SEED_BOUNDS)


def existing_path(name: str, kind: str = "file", noun: str | None = None):
    """An argparse ``type=`` for an input path that must exist: ``kind`` is ``file``, ``dir`` or ``any``
    (``noun``: what the message calls it). The parser carries ``.path_kind`` (tests walk every input path option).
    """
    noun = noun or ("directory" if kind == "dir" else "file")

    def parse(text: str) -> str:
        p = Path(text)
        if not p.exists():
            raise CliError(f"{name}: {text}: no such {noun}")
        if kind == "file" and not p.is_file():
            raise CliError(f"{name}: {text}: not a file")
        if kind == "dir" and not p.is_dir():
            raise CliError(f"{name}: {text}: not a directory")
        return text

    parse.path_kind = kind
    return parse


def positive_float(name: str):
    """An argparse ``type=`` for a finite number > 0; a bad value is one ``error:`` line naming ``name``."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise CliError(f"{name}: not a number: {text!r}") from None
        if not (math.isfinite(v) and v > 0):
            raise CliError(f"{name}: must be a number > 0, got {text}")
        return v

    return parse


def parse_k(text: str) -> int | None:
    """``--k``: a positive integer, or ``all`` (returned as None, i.e. mAP@all)."""
    if text.strip().lower() == "all":
        return None
    if not re.fullmatch(r"[+-]?\d+", text.strip()):
        raise CliError(f"--k must be a positive integer or 'all', got {text!r}")
    k = int(text)
    if not 1 <= k <= K_MAX:
        raise CliError(f"--k must be in [1, {K_MAX}] or 'all', got {k}")
    return k


#: largest cut-off K of mAP@K (larger: use 'all')
K_MAX = 1_000_000
parse_k.bounds = (1, K_MAX)
#: largest 1-based --stage (a stage per modality)
MAX_STAGE = 1000


def run_dir_parser(prog: str, description: str) -> ArgumentParser:
    """A parser whose first argument is ``RUN_DIR``, a run directory written by ``python -m cvs_tf.train``."""
    p = ArgumentParser(prog=prog, description=description)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by python -m cvs_tf.train")
    return p
