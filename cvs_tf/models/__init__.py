"""Models: the shared CrossModalModel, building a configured space, and the built-in spaces' model classes.

Each space's model class lives in its module under ``cvs_tf/spaces/``; importing this package
imports (hence registers with Keras) every built-in one, and ``cvs_tf.models.CVSModel`` etc.
still name them.
"""

import importlib

from cvs_tf.models.base import CrossModalModel, pair_key
from cvs_tf.models.factory import build_model
from cvs_tf.spaces import import_builtin_spaces

import_builtin_spaces()

_MOVED = {"CVSModel": "cvs_tf.spaces.cvs", "MCVSModel": "cvs_tf.spaces.mcvs", "RVSModel": "cvs_tf.spaces.rvs"}


def __getattr__(name):  # (read lazily: a space module may be importing this package right now)
    if name in _MOVED:
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CVSModel", "CrossModalModel", "MCVSModel", "RVSModel", "build_model", "pair_key"]
