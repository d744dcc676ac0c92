"""The built-in pair-loss kinds, one module each named after its kind; importing this package registers them all.

A module whose name starts with ``_`` is not a kind. Adding ``cvs_tf/losses/kinds/<name>.py`` that
calls :func:`cvs_tf.losses.register_pair_loss` is all a new built-in kind needs.
"""

import importlib
import pkgutil


def import_builtin_kinds() -> None:
    """Import (hence register) every kind module of this package."""
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


import_builtin_kinds()
