"""Hyperparameter search over RunConfig (``python -m cvs_tf.tune``): Optuna TPE, selected on validation, one final test run.

``space`` holds the search space as data, ``trial`` one trial's training and record, ``study`` the
resumable study in ``DIR/study.journal`` and ``report`` the best config, final run and summary.
"""

from cvs_tf.tuning.space import (
           DEFAULT_LOSS_KINDS,
           Param,
           SearchSpace,
           default_space,
           override_space,
)
from cvs_tf.tuning.study import STUDY_FILE, TuneResult, TuneSettings, tune
from cvs_tf.tuning.trial import TuneError

__all__ = ["DEFAULT_LOSS_KINDS", "STUDY_FILE", "Param", "SearchSpace", "TuneError", "TuneResult", "TuneSettings",
           "default_space", "override_space", "tune"]
