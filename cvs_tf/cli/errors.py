"""One-line `error:` reporting and exit status 2 for every cvs_tf command-line tool."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence


class CliError(Exception):
    """A user-facing error: printed as one `error: ...` line, exit status 2, no traceback."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line `error:` messages (exit 2) instead of usage dumps."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise CliError(f"{self.prog}: {message}")


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run ``main(argv)``; user errors (CliError, FeatureSetError, ValueError, OSError) become exit 2.

    Anything else is a bug and keeps its traceback.
    """
    from cvs_tf.data.store import FeatureSetError

    try:
        code = main(argv)
    except (CliError, FeatureSetError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except (ValueError, OSError, KeyError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())
