"""A check of a run's config against its feature set made before training: the instance term's pairing (the rest is cvs_tf.plan.RunPlan.build)."""

from __future__ import annotations

from cvs_tf.config import ConfigError, RunConfig
from cvs_tf.data.store import FeatureSet


def check_instance_term(config: RunConfig, fs: FeatureSet) -> None:
    """The instance term, and model selection by ``val_recall``, pair row i of every modality as one item: only
    an instance-paired set has such rows."""
    if config.train.early_stopping == "val_recall" and not fs.paired:
        raise ConfigError(f"train.early_stopping val_recall needs an instance-paired dataset (row i of every "
                          f"modality the same item); {fs.name} is paired by class: use val_map")
    if config.loss.instance_weight > 0 and not fs.paired:
        raise ConfigError(f"loss.instance_weight {config.loss.instance_weight:g} needs an instance-paired "
                          f"dataset (row i of every modality the same item); {fs.name} is paired by class "
                          "only: set it to 0")
