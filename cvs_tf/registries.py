"""The checks of the config fields that name a registered space or pair loss, added to ``RunConfig.validate``."""

from __future__ import annotations

from cvs_tf.config import ConfigError, LossConfig, add_name_check
from cvs_tf.spaces import space_names

__all__ = ["check_loss_kind", "check_space"]


def check_space(config) -> None:
    """``model.space`` is a registered space (names only: no space module is imported)."""
    if config.model.space not in space_names():
        raise ConfigError(f"model.space must be one of {', '.join(space_names())}, got {config.model.space!r}")


def check_loss_kind(config) -> None:
    """``loss.kind`` is a registered pair loss; the default needs no TensorFlow, any other kind imports the losses."""
    kind = config.loss.kind
    if kind == LossConfig.kind:  # the default is always registered
        return
    from cvs_tf.losses.registry import pair_loss_names

    if kind not in pair_loss_names():
        raise ConfigError(f"loss.kind must be a registered pair loss ({', '.join(pair_loss_names())}), got {kind!r}")


add_name_check("model.space", check_space)
add_name_check("loss.kind", check_loss_kind)
