"""Build the configured space's model from a RunConfig, a feature set and the run's plan (the space comes from the registry)."""

from __future__ import annotations

from cvs_tf.config import RunConfig
from cvs_tf.data.store import FeatureSet


def build_model(config: RunConfig, fs: FeatureSet, plan=None):
    """Instantiate the configured space for ``fs`` (not compiled) from ``plan`` (a :class:`cvs_tf.plan.RunPlan`;
    built here, without the run's split checks, when not given)."""
    from cvs_tf.plan import RunPlan
    from cvs_tf.spaces import get_space

    config.validate()
    plan = plan if plan is not None else RunPlan.build(config, fs, check_splits=False)
    return get_space(plan.space).build(config, fs, plan)
