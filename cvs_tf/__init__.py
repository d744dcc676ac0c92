"""cvs_tf: cross-modal embedding spaces (CVS, M-CVS, RVS) over pre-extracted features, in TensorFlow/Keras."""

__version__ = "0.1.0"
