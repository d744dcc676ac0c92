"""The ``max_violation`` kind on a hand-worked batch (cvs_tf/losses/kinds/max_violation.py)."""

import numpy as np
import pytest

from cvs_tf.losses.kinds.max_violation import max_violation

X = [[1, 0], [0, 1], [1, 0]]
Y = [[1, 0], [0, 1], [0.6, 0.8]]  # s = X·Yᵀ = [[1, 0, .6], [0, 1, .8], [1, 0, .6]]


def _run(labels, margin=0.5, ex=X, ey=Y):
    out = max_violation(np.asarray([labels]), np.asarray([ex], np.float32), np.asarray([labels]),
                        np.asarray([ey], np.float32), {"vse_margin": margin})
    return {t: float(v[0]) for t, v in out.items()}


def test_hardest_negative_of_each_anchor():
    # three classes, every other item a negative. x -> y: [.5 - 1 + .6], [.5 - 1 + .8], [.5 - .6 + 1];
    # y -> x (s transposed: [[1, 0, 1], [0, 1, 0], [.6, .8, .6]]): [.5 - 1 + 1], [.5 - 1 + 0]_+, [.5 - .6 + .8].
    out = _run([0, 1, 2])
    assert out == pytest.approx({"{a}_to_{b}": 1.3 / 3, "{b}_to_{a}": 1.2 / 3, "total": 2.5 / 6}, rel=1e-5)


def test_a_same_class_item_is_never_the_hardest_negative():
    # items 0 and 2 of one class: x_2's closest y_0 (s = 1) and x_0's y_2 (s = .6) are not negatives.
    # x -> y: [.5 - 1 + 0]_+, [.5 - 1 + .8], [.5 - .6 + 0]_+; y -> x: 0, [.5 - 1 + 0]_+, [.5 - .6 + .8].
    out = _run([0, 1, 0])
    assert out == pytest.approx({"{a}_to_{b}": 0.1, "{b}_to_{a}": 0.7 / 3, "total": (0.1 + 0.7 / 3) / 2}, rel=1e-5)


def test_the_margin_is_vse_margin():
    assert _run([0, 1, 2], margin=0.0)["{a}_to_{b}"] == pytest.approx(0.4 / 3, rel=1e-5)  # only x_2 violates


def test_anchors_without_a_negative_are_skipped():
    assert _run([1, 1, 1]) == {"{a}_to_{b}": 0.0, "{b}_to_{a}": 0.0, "total": 0.0}
    # multi-hot: item 0 shares a class with both others, so it has no negative and is left out of the
    # means; x -> y: x_1 [.5 - 1 + .8], x_2 [.5 - .6 + 0]_+; y -> x: y_1 [.5 - 1 + 0]_+, y_2 [.5 - .6 + .8].
    out = _run(np.array([[1, 1], [1, 0], [0, 1]], np.float32))
    assert out == pytest.approx({"{a}_to_{b}": 0.3 / 2, "{b}_to_{a}": 0.7 / 2, "total": 0.25}, rel=1e-5)
