"""``get_config`` helper: a parent's config chained with the ``__init__`` arguments a layer or model stores."""

from __future__ import annotations

import keras


def stored_config(config: dict, obj, names, *, initializer: bool = False, **extra) -> dict:
    """``config`` (the parent's ``get_config()``) updated with ``getattr(obj, n)`` for each of ``names``,
    the serialised ``obj.kernel_initializer`` when ``initializer``, and ``extra``."""
    config.update({n: getattr(obj, n) for n in names})
    if initializer:
        config["kernel_initializer"] = keras.initializers.serialize(obj.kernel_initializer)
    config.update(extra)
    return config
