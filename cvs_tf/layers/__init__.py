"""Layers of cvs_tf: the per-modality branch, the aligned (CVS/M-CVS) and reference (RVS) attention blocks, a learnt temperature, hashed text n-grams."""

from cvs_tf.layers.aligned_attention import AlignedAttention
from cvs_tf.layers.branch import ModalityBranch
from cvs_tf.layers.hashed_text import HashedText
from cvs_tf.layers.rvs_attention import RVSAttention, RVSReference
from cvs_tf.layers.temperature import LearnedTemperature

__all__ = ["ModalityBranch", "AlignedAttention", "HashedText", "LearnedTemperature", "RVSAttention", "RVSReference"]
