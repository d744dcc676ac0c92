"""The two errors of the experiments layer: a bad config (:class:`SpecError`) and an experiment that cannot run."""


class SpecError(ValueError):
    """An experiment config is missing, malformed or inconsistent; the message names the file and field."""


class ExperimentError(ValueError):
    """An experiment cannot run (missing data, inconsistent config); the message says what to do."""
