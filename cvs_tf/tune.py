"""Entry point for `python -m cvs_tf.tune` (implementation in cvs_tf.cli.tune)."""

import sys

from cvs_tf.cli.tune import main, parse_args
from cvs_tf.utils.cli import run_cli

__all__ = ["main", "parse_args"]

if __name__ == "__main__":
    sys.exit(run_cli(main))
