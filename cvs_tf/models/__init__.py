"""Models: the three cross-modal spaces (CVS, M-CVS, RVS) and building them from a config."""

from cvs_tf.models.base import CrossModalModel, pair_key
from cvs_tf.models.cvs import CVSModel
from cvs_tf.models.factory import build_model
from cvs_tf.models.mcvs import MCVSModel
from cvs_tf.models.rvs import RVSModel

__all__ = ["CVSModel", "CrossModalModel", "MCVSModel", "RVSModel", "build_model", "pair_key"]
