"""The ``infonce`` kind on hand-worked batches (cvs_tf/losses/kinds/infonce.py)."""

from math import e, exp, log, sqrt

import numpy as np
import pytest

from cvs_tf.losses.kinds.infonce import infonce


def _run(labels, ex, ey=None, yy=None, temperature=1.0):
    ex = np.asarray(ex, np.float32)[None]
    ey = ex if ey is None else np.asarray(ey, np.float32)[None]
    yy = labels if yy is None else yy
    out = infonce(np.asarray([labels]), ex, np.asarray([yy]), ey, {"temperature": temperature})
    return {t: float(v[0]) for t, v in out.items()}


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_two_orthonormal_pairs(temperature):
    # logits = I / τ: each anchor's positive has logit 1/τ against one negative of logit 0.
    out = _run([0, 1], np.eye(2), temperature=temperature)
    want = log(1 + exp(-1 / temperature))
    assert out == pytest.approx({"{a}_to_{b}": want, "{b}_to_{a}": want, "total": want}, rel=1e-6)


def test_same_class_items_leave_the_denominator():
    # x = y = three orthonormal items, items 0 and 1 of one class: anchors 0 and 1 keep one negative
    # (item 2), anchor 2 keeps two.
    out = _run([0, 0, 1], np.eye(3))
    assert out["{a}_to_{b}"] == pytest.approx((2 * log(1 + 1 / e) + log(1 + 2 / e)) / 3, rel=1e-6)
    multi = _run(np.array([[1, 0], [1, 1], [0, 1]], np.float32), np.eye(3))  # item 1 shares with both
    assert multi["total"] == pytest.approx(2 / 3 * log(1 + 1 / e), rel=1e-6)  # anchor 1 keeps no negative: 0


def test_one_class_batch_has_only_positives_and_gives_zero():
    assert _run([2, 2, 2], np.eye(3)) == {"{a}_to_{b}": 0.0, "{b}_to_{a}": 0.0, "total": 0.0}


def test_the_two_directions_differ_and_total_is_their_mean():
    c = 1 / sqrt(2)
    out = _run([0, 1], np.eye(2), ey=[[1, 0], [c, c]])  # s = [[1, c], [0, c]]
    a_to_b = (log(1 + exp(c - 1)) + log(1 + exp(-c))) / 2
    b_to_a = (log(1 + exp(-1)) + log(2)) / 2  # y_1 is as close to x_0 as to x_1
    assert out["{a}_to_{b}"] == pytest.approx(a_to_b, rel=1e-6)
    assert out["{b}_to_{a}"] == pytest.approx(b_to_a, rel=1e-6)
    assert out["total"] == pytest.approx((a_to_b + b_to_a) / 2, rel=1e-6)
