"""Entry point of ``python -m cvs_tf.data`` (inspect, synth, convert, import, extract); see :mod:`cvs_tf.cli.data`."""

import sys

from cvs_tf.cli.data import main
from cvs_tf.utils.cli import run_cli

if __name__ == "__main__":
    sys.exit(run_cli(main))
