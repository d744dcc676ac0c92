"""Builders of the real feature sets shipped with cvs_tf: Tux-12 (``python -m data_prep.tux12``) and Digits-10.

They extract features from Debian and PyPI packages with pretrained encoders (``extractors``,
``tuxdigits_common``) in their own virtualenv (``make data-tux12``, ``make data-digits10``); see
``docs/datasets-real.md``. The converters of the licensed benchmark files live in the library,
:mod:`cvs_tf.data.converters` (``python -m cvs_tf.data convert``).
"""
