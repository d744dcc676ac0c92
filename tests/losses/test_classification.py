"""Tests for classification_loss: hand-derived values, multi-hot soft targets, edge cases."""

import numpy as np
import pytest

from cvs_tf.losses import classification_loss

LN3 = float(np.log(3.0))


def test_class_ids_hand_derived():
    """logits [0, ln3]: softmax [1/4, 3/4]. Label 1 → -ln(3/4) = ln(4/3); label 0 → ln 4. Mean of both."""
    logits = np.array([[0.0, LN3], [0.0, LN3]], "float32")
    assert float(classification_loss([1, 0], logits)) == pytest.approx((np.log(4 / 3) + np.log(4)) / 2, abs=1e-6)
    assert float(classification_loss(np.array([[1], [0]]), logits)) == pytest.approx(
        (np.log(4 / 3) + np.log(4)) / 2, abs=1e-6)


def test_multi_hot_soft_target():
    """Row {0, 1} → target [1/2, 1/2]; with softmax [1/4, 3/4] the loss is ½ ln 4 + ½ ln(4/3).
    The all-zero second row has no target and is left out of the mean."""
    labels = np.array([[1, 1], [0, 0]], "uint8")
    logits = np.array([[0.0, LN3], [5.0, -5.0]], "float32")
    assert float(classification_loss(labels, logits)) == pytest.approx(0.5 * np.log(4) + 0.5 * np.log(4 / 3), abs=1e-6)


def test_one_hot_equals_class_ids():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 5, size=9)
    logits = rng.normal(size=(9, 5)).astype("float32")
    assert float(classification_loss(np.eye(5)[ids], logits)) == pytest.approx(float(classification_loss(ids, logits)), abs=1e-6)


def test_edge_cases_are_zero():
    assert float(classification_loss(np.zeros((0,), "int32"), np.zeros((0, 3), "float32"))) == 0.0
    assert float(classification_loss(np.zeros((2, 3)), np.ones((2, 3), "float32"))) == 0.0


def test_rejects_bad_shapes():
    with pytest.raises(ValueError, match="classes"):
        classification_loss(np.eye(3), np.zeros((3, 4), "float32"))
    with pytest.raises(ValueError, match="logits"):
        classification_loss([0], np.zeros((1, 2, 2), "float32"))


def test_label_smoothing_hand_derived():
    """logits [0, ln3] (softmax [1/4, 3/4]), label 1, ε = 0.2 over C = 2: target [0.1, 0.9], so the
    loss is 0.1 ln 4 + 0.9 ln(4/3); multi-hot {1} gives the same, and ε = 0 is plain cross-entropy."""
    logits = np.array([[0.0, LN3]], "float32")
    want = 0.1 * np.log(4) + 0.9 * np.log(4 / 3)
    assert float(classification_loss([1], logits, 0.2)) == pytest.approx(want, abs=1e-6)
    assert float(classification_loss(np.array([[0, 1]], "uint8"), logits, 0.2)) == pytest.approx(want, abs=1e-6)
    assert float(classification_loss([1], logits, 0.0)) == pytest.approx(np.log(4 / 3), abs=1e-6)
