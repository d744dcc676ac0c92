"""Serving: export a trained space's encoders as SavedModels (one per modality) and load them back."""

from cvs_tf.serving.export import (
    EXPORT_FORMAT,
    EXPORT_MANIFEST,
    Export,
    ExportError,
    export_model,
    export_run,
)

__all__ = ["EXPORT_FORMAT", "EXPORT_MANIFEST", "Export", "ExportError", "export_model", "export_run"]
