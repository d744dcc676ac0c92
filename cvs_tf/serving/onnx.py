"""ONNX for exports: the tf2onnx conversion of one exported SavedModel, and the check that tf2onnx is installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from cvs_tf.serving.checks import ExportError

ONNX_OPSET = 17


def to_onnx(saved: Path, out: Path, input_dim: int, input_name: str) -> None:
    """Convert one exported SavedModel's ``serve`` endpoint with tf2onnx."""
    import tensorflow as tf
    import tf2onnx

    loaded = tf.saved_model.load(str(saved))
    spec = (tf.TensorSpec((None, input_dim), tf.float32, name=input_name),)
    tf2onnx.convert.from_function(loaded.serve, input_signature=spec, opset=ONNX_OPSET, output_path=str(out))


def require_onnx() -> None:
    """Raise ExportError (one line) when tf2onnx, needed for ``--format onnx``, is not installed."""
    if importlib.util.find_spec("tf2onnx") is None:
        raise ExportError("--format onnx needs tf2onnx, which is not installed (pip install tf2onnx); "
                          "the SavedModel export needs nothing extra")
