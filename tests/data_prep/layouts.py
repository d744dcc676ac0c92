"""Moved to tests/data/converters/layouts.py; this alias stays until tests/experiments/test_runner.py imports it from there."""

from tests.data.converters.layouts import *  # noqa: F401,F403
from tests.data.converters.layouts import xmedia  # noqa: F401
