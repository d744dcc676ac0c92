"""Checks of a run's config against its feature set made before training: the instance term's pairing, the validation split."""

from __future__ import annotations

from cvs_tf.config import ConfigError, RunConfig
from cvs_tf.data.store import FeatureSet
from cvs_tf.models.factory import resolve_stages


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


def has_validation(config: RunConfig, fs: FeatureSet, test_split: bool = True) -> bool:
    """Whether every trained modality has validation items. Without them only ``early_stopping='none'`` can
    train (val loss and val mAP are skipped), and a run that never reads test (``test_split`` False) cannot."""
    stages = resolve_stages(config, fs)
    mods = list(dict.fromkeys(m for s in stages for m in s))
    empty = [m for m in mods if fs.count(m, "val") == 0]
    if empty and not test_split:
        raise ConfigError(f"dataset {fs.name} has no validation items for {', '.join(empty)}: "
                          "a run that never reads the test split (tuning) needs them")
    if empty and config.train.early_stopping != "none":
        raise ConfigError(
            f"dataset {fs.name} has no validation items for {', '.join(empty)} (a set made with "
            f"--val-fraction 0): train.early_stopping {config.train.early_stopping} needs them; "
            "use --early-stopping none (no model selection, the last epoch is kept)"
        )
    return not empty
