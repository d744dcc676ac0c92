"""The ``supcon`` kind on hand-worked batches of three orthonormal items (cvs_tf/losses/kinds/supcon.py)."""

from math import e, log

import numpy as np
import pytest

from cvs_tf.losses.kinds.supcon import supcon

E3 = np.eye(3, dtype=np.float32)[None]  # one pair: x = y = three orthonormal items, cosines 1 (self) or 0
OPTIONS = {"gammas": (0.25, 0.25, 0.5), "temperature": 1.0}


def _run(yx, yy=None, ex=E3, ey=E3, **options):
    out = supcon(np.asarray([yx]), ex, np.asarray([yy if yy is not None else yx]), ey, {**OPTIONS, **options})
    return {t: float(v[0]) for t, v in out.items()}


def test_ids_two_items_of_one_class_and_one_alone():
    out = _run([0, 0, 1])
    # intra: anchors 0 and 1 have one positive (logit 0) among two candidates (logits 0, 0): -log(1/2);
    # anchor 2 has no positive and is skipped.
    assert out["intra_{a}"] == pytest.approx(log(2)) and out["intra_{b}"] == pytest.approx(log(2))
    # inter x -> y: the denominator is e + 2 for every anchor; anchors 0, 1 have positives with logits
    # {1, 0} (mean log-prob 1/2 - log(e+2)), anchor 2 the one positive of logit 1.
    inter = ((log(e + 2) - 0.5) * 2 + (log(e + 2) - 1)) / 3
    assert out["inter"] == pytest.approx(inter, rel=1e-6)
    assert out["total"] == pytest.approx(0.25 * log(2) * 2 + 0.5 * inter, rel=1e-6)


def test_multi_hot_labels_share_a_class_through_any_common_label():
    out = _run(np.array([[1, 0], [1, 1], [0, 1]], np.float32))
    # item 1 is a positive of both others; 0 and 2 share nothing. Intra: every anchor's positives have
    # logit 0 among candidates of logit 0: log 2. Inter: anchors 0 and 2 have 2 positives ({1, 0}),
    # anchor 1 all three ({0, 1, 0}): (2 (L - 1/2) + (L - 1/3)) / 3 = L - 4/9, L = log(e + 2).
    assert out["intra_{a}"] == pytest.approx(log(2), rel=1e-6)
    assert out["inter"] == pytest.approx(log(e + 2) - 4 / 9, rel=1e-6)


def test_the_temperature_divides_the_cosines():
    out = _run([0, 0, 1], temperature=0.5)
    inter = ((log(e**2 + 2) - 1) * 2 + (log(e**2 + 2) - 2)) / 3  # logits 2·cos
    assert out["inter"] == pytest.approx(inter, rel=1e-6) and out["intra_{a}"] == pytest.approx(log(2))


def test_anchors_without_a_positive_are_skipped_not_nan():
    out = _run([0, 1, 2])  # intra: nobody has a positive
    assert out["intra_{a}"] == out["intra_{b}"] == 0.0
    assert out["inter"] == pytest.approx(log(e + 2) - 1, rel=1e-6)  # each x_i's one positive is y_i
    empty = _run(np.zeros((3, 2), np.float32))  # all-zero multi-hot rows match nothing, not even themselves
    assert empty == {"intra_{a}": 0.0, "intra_{b}": 0.0, "inter": 0.0, "total": 0.0}


def test_inter_is_the_average_of_both_directions():
    # x_0 has two positives in y (logits 1, 0); y_0 has one in x (logit 1): the two directions differ.
    out = _run([0, 1, 2], yy=[0, 0, 2])
    x_to_y = ((log(e + 2) - 0.5) + (log(e + 2) - 1)) / 2  # x_1 (class 1) has no positive in y: skipped
    y_to_x = ((log(e + 2) - 1) + log(e + 2) + (log(e + 2) - 1)) / 3  # y_1's one positive x_0 has logit 0
    assert out["inter"] == pytest.approx(0.5 * (x_to_y + y_to_x), rel=1e-6)
