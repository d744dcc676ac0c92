"""Tests for reconstruction_loss (mean squared error)."""

import numpy as np
import pytest

from cvs_tf.losses import reconstruction_loss


def test_hand_derived():
    """target [[1, 2], [0, 0]] vs zeros: (1 + 4 + 0 + 0) / 4 = 1.25."""
    assert float(reconstruction_loss([[1.0, 2.0], [0.0, 0.0]], np.zeros((2, 2)))) == pytest.approx(1.25)


def test_empty_batch_is_zero_and_shapes_must_match():
    assert float(reconstruction_loss(np.zeros((0, 3)), np.zeros((0, 3)))) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        reconstruction_loss(np.zeros((2, 3)), np.zeros((2, 4)))
