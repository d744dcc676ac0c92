"""Compile a stage's train and test steps on all-zero batches before its feature banks exist, leaving the model's state untouched.

The compiled steps take ``(features, labels)`` batches gathered by tf.data, so they capture no
feature tensor and can be traced and (XLA-)compiled before the banks are built. Doing that first
keeps the compiler's transient memory (≈ 0.6 GiB at XMedia sizes, docs/performance.md) from
stacking on the resident features. The warm-up runs one real train step and one test step on
zeros, so everything it changes is put back exactly: the model's variables (weights, seed
states), the optimizer's variables (slots, iteration count, loss scale) and the loss trackers.
Keras then reuses the traced functions, because the real batches have the same element spec.
"""

from __future__ import annotations

import ctypes

import numpy as np

from cvs_tf.data.pipeline import zero_dataset

__all__ = ["compile_steps", "release_free_heap"]


def _snapshot(variables):
    return [(v, np.array(v.numpy(), copy=True)) for v in variables]


def compile_steps(model, strategy, train_spec, val_spec=None, distribute=None) -> None:
    """Trace and compile ``model``'s train (and, with ``val_spec``, test) function on zero batches.

    ``train_spec``/``val_spec`` are per-replica element specs (cvs_tf.data.pipeline.batch_spec);
    ``distribute(make)`` distributes a dataset maker as the real input is (default: as is).
    The model must be compiled; its optimizer is built here if it is not yet (as its first step would).
    """
    distribute = distribute or (lambda make: make(None))
    with strategy.scope():
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
    saved = _snapshot(model.variables) + _snapshot(model.optimizer.variables)
    try:
        model.make_train_function()
        model.train_function(iter(distribute(lambda shard: zero_dataset(train_spec))))
        if val_spec is not None:
            model.make_test_function()
            model.test_function(iter(distribute(lambda shard: zero_dataset(val_spec))))
    finally:
        for v, value in saved:
            v.assign(value)
        model.reset_metrics()
    del saved
    release_free_heap()


def release_free_heap() -> None:
    """Return the C heap's free pages to the OS (glibc ``malloc_trim``; nothing elsewhere)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
