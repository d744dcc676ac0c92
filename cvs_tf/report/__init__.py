"""A run's self-contained HTML report (``python -m cvs_tf.report``) and its model card (``MODEL_CARD.md``).

The names below load their module on first use, so ``cvs_tf.report.media`` (stdlib only) and
``cvs_tf.report.card`` stay light for the trainer and for the data-prep environment (no TensorFlow).
"""

import importlib

_WHERE = {"REPORT_FILE": "build", "build_report": "build", "is_report_file": "build", "write_report": "build",
          "MODEL_CARD": "card", "model_card": "card", "write_model_card": "card", "ReportError": "records"}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"cvs_tf.report.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'cvs_tf.report' has no attribute {name!r}")
