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
    """``loss.kind`` is a registered pair loss, one that takes a cross-batch memory when ``loss.xbm_size`` > 0;
    the default needs no TensorFlow (it takes one), any other kind imports the losses."""
    kind = config.loss.kind
    if kind == LossConfig.kind:  # the default is always registered
        return
    from cvs_tf.losses.registry import get_pair_loss, memory_kinds, pair_loss_names

    if kind not in pair_loss_names():
        raise ConfigError(f"loss.kind must be a registered pair loss ({', '.join(pair_loss_names())}), got {kind!r}")
    if config.loss.xbm_size > 0 and not get_pair_loss(kind).memory:
        raise ConfigError(f"loss.xbm_size {config.loss.xbm_size}: the pair loss {kind!r} takes no cross-batch "
                          f"memory (kinds that do: {', '.join(memory_kinds())}); set it to 0 or pick one of those")


add_name_check("model.space", check_space)
add_name_check("loss.kind", check_loss_kind)
