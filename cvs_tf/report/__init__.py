"""A run's self-contained HTML report (``python -m cvs_tf.report``) and its model card (``MODEL_CARD.md``)."""

from cvs_tf.report.build import REPORT_FILE, build_report, is_report_file, write_report
from cvs_tf.report.card import MODEL_CARD, model_card, write_model_card
from cvs_tf.report.records import ReportError

__all__ = ["REPORT_FILE", "MODEL_CARD", "ReportError", "build_report", "is_report_file", "model_card",
           "write_model_card", "write_report"]
