"""Deterministic training (``TrainConfig.deterministic``): TensorFlow's op determinism, on for one run."""

from __future__ import annotations

import contextlib

import tensorflow as tf

# the public API can only enable op determinism; this module also reads and restores it
from tensorflow.python.framework import config as tf_config


def op_determinism_enabled() -> bool:
    """Whether TensorFlow's op determinism is on in this process."""
    return bool(tf_config.is_op_determinism_enabled())


def set_op_determinism(on: bool) -> None:
    """Turn TensorFlow's process-global op determinism on or off.

    On: every op runs a deterministic kernel or raises (GPU reductions, cuDNN algorithms, XLA's GPU
    ops), tf.data runs its transformations in order, and a random op without a seed raises.
    """
    if on:
        tf.config.experimental.enable_op_determinism()
    else:
        tf_config.disable_op_determinism()


@contextlib.contextmanager
def op_determinism(on: bool):
    """Op determinism on inside the block when ``on`` (restored after); ``on=False`` leaves the process as it is."""
    was = op_determinism_enabled()
    if on and not was:
        set_op_determinism(True)
    try:
        yield
    finally:
        if on and not was:
            set_op_determinism(False)
