"""Tests of the converters of the official benchmark layouts (cvs_tf.data.converters)."""
