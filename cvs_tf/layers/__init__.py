"""Layers of cvs_tf: the per-modality branch and the aligned (CVS/M-CVS) and reference (RVS) attention blocks."""

from cvs_tf.layers.aligned_attention import AlignedAttention
from cvs_tf.layers.branch import ModalityBranch
from cvs_tf.layers.rvs_attention import RVSAttention, RVSReference

__all__ = ["ModalityBranch", "AlignedAttention", "RVSAttention", "RVSReference"]
