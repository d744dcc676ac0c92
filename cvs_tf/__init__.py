"""cvs_tf: cross-modal embedding spaces (CVS, M-CVS, RVS) over pre-extracted features, in TensorFlow/Keras.

``import cvs_tf`` registers every Keras-serialisable class (models, layers, losses), so
``keras.saving.load_model("RUN/stages/2-…/model.keras")`` works in a fresh process;
:func:`load_model` also takes a run directory. Inside our own command-line tools it only quiets
TensorFlow's start-up lines instead (see ``cvs_tf._startup``).
"""

__version__ = "0.1.0"

from cvs_tf import _startup, registries  # noqa: F401  (registries: RunConfig.validate's name checks)
from cvs_tf.loading import ModelFileError, load_model

_startup.on_import()

__all__ = ["ModelFileError", "__version__", "load_model"]
