"""Build the configured space's model from a RunConfig and a feature set (the space comes from the registry)."""

from __future__ import annotations

from cvs_tf.config import RunConfig
from cvs_tf.data.store import FeatureSet


def resolve_stages(config: RunConfig, fs: FeatureSet) -> list[list[str]]:
    """The stage plan for the configured space on this dataset (raises ConfigError on a mismatch)."""
    from cvs_tf.spaces import get_space

    return get_space(config.model.space).resolve_stages(config, fs)


def build_model(config: RunConfig, fs: FeatureSet):
    """Instantiate the configured space for ``fs`` (not compiled)."""
    from cvs_tf.spaces import get_space

    config.validate()
    return get_space(config.model.space).build(config, fs)
