"""The sort-based semi-hard mining equals the (anchors × candidates × negatives) cube rule: values and gradients, eager and XLA."""

import numpy as np
import pytest
import tensorflow as tf

from cvs_tf.losses.triplet import (
    _count_at_most,
    _distances,
    _intra_masks,
    _same_class,
    _semi_hard_from_masks,
    _semi_hard_from_masks_cube,
    _sort_rows,
)

MINERS = {"sort": _semi_hard_from_masks, "cube": _semi_hard_from_masks_cube}


def _masks(la, ea, lb=None, eb=None):
    """``(dist, positives, negatives)``: within one set when ``lb`` is None, else from set a to set b."""
    la = tf.convert_to_tensor(la)
    if lb is None:
        return _intra_masks(la, ea)
    same = _same_class(la, tf.convert_to_tensor(lb), ids=la.shape.rank < ea.shape.rank)
    return _distances(ea, eb), same, tf.logical_not(same)


def _loss_and_grads(miner, emb_vars, labels, margin, jit=False):
    """Loss and its gradients (w.r.t. the embeddings and w.r.t. the distance matrix) of one miner."""

    def body(*embs):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(embs)
            dist, pos, neg = _masks(*[x for pair in zip(labels, embs) for x in pair])
            tape.watch(dist)
            loss = miner(dist, pos, neg, margin)
            total = tf.reduce_sum(loss)
        return loss, tape.gradient(total, list(embs)), tape.gradient(total, dist)

    fn = tf.function(body, jit_compile=True) if jit else body
    loss, g_emb, g_dist = fn(*[tf.constant(e) for e in emb_vars])
    return loss.numpy(), [g.numpy() for g in g_emb], g_dist.numpy()


def _assert_same(labels, embs, margin=1.0, jit=False):
    got = _loss_and_grads(_semi_hard_from_masks, embs, labels, margin, jit)
    want = _loss_and_grads(_semi_hard_from_masks_cube, embs, labels, margin, jit)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6, atol=1e-6)
    for g, w in zip(got[1], want[1]):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got[2], want[2], rtol=1e-6, atol=1e-6)
    return got


def _col(values):
    return np.asarray(values, "float32").reshape(-1, 1)


# The fixtures of test_triplet.py (hand-derived and edge cases), as (labels, embeddings[, labels, embeddings]).
FIXTURES = [
    ([0, 0, 1, 1], _col([0, 1, 3, 6])),
    ([0, 0, 1], _col([0, 4, 1])),
    ([0, 1], _col([0, 2]), [0, 1, 0], _col([1, 2, 3])),
    ([0, 1, 0], _col([1, 2, 3]), [0, 1], _col([0, 2])),
    (np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1]], "float32"), _col([0, 1, 3, 6])),
    ([0, 0, 0], _col([0, 1, 3])),
    ([3], np.array([[0.5, 0.5]], "float32")),
    ([0, 1, 2], np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]], "float32")),
    ([0], _col([0]), [1, 2], _col([1, 2])),
    ([0], _col([0]), [0], _col([2])),
    (np.array([[1, 0], [1, 0], [0, 0]], "float32"), _col([0, 4, 1])),
    ([0, 0, 0], _col([0, 0, 0])),
    ([0, 1], _col([0, 0])),
    ([0, 0, 1], _col([0, 0, 0])),
    ([0, 0, 1, 1], _col([0, 1, 2, 2])),       # both negatives of anchor 0 at the same distance
]


def _case(seed):
    """A random case built to hit ties, multi-hot labels, anchors without negatives and singleton classes."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    kind = seed % 4
    if kind == 0:     # class ids, some classes with one item
        labels = rng.integers(0, int(rng.integers(1, 8)), size=n)
    elif kind == 1:   # multi-hot, with all-zero rows (no class) and all-ones rows (no negative)
        labels = (rng.random((n, 4)) < 0.3).astype("float32")
        labels[rng.random(n) < 0.15] = 1.0
    elif kind == 2:   # single class: no anchor has a negative
        labels = np.zeros(n, "int64")
    else:             # every class a singleton but a few
        labels = np.arange(n) // int(rng.integers(1, 3))
    # a coarse grid (exact distances, many equal) with duplicated rows
    emb = rng.integers(-4, 5, size=(n, int(rng.integers(1, 4)))) * 0.5
    dup = rng.random(n) < 0.3
    emb[dup] = emb[rng.integers(0, n, size=int(dup.sum()))]
    return labels, emb.astype("float32")


SLOW = pytest.mark.slow   # XLA compiles take a second or more each


@pytest.mark.parametrize("case", range(len(FIXTURES)))
def test_fixtures_match_the_cube(case):
    labels, embs = FIXTURES[case][0::2], FIXTURES[case][1::2]
    for margin in (1.0, 4.0):
        _assert_same([np.asarray(x) for x in labels], embs, margin)


@SLOW
@pytest.mark.parametrize("case", range(len(FIXTURES)))
def test_fixtures_match_the_cube_under_xla(case):
    labels, embs = FIXTURES[case][0::2], FIXTURES[case][1::2]
    _assert_same([np.asarray(x) for x in labels], embs, 1.0, jit=True)


@pytest.mark.parametrize("seed", range(24))
def test_random_tie_heavy_cases_match_the_cube(seed):
    labels, emb = _case(seed)
    loss, grads, _ = _assert_same([labels], [emb], margin=float(np.random.default_rng(seed).uniform(0.1, 2.0)))
    assert np.isfinite(loss) and np.all(np.isfinite(grads[0]))
    other_labels, other_emb = _case(1000 + seed)   # same label kind (seed % 4) as the anchors
    if emb.shape[1] == other_emb.shape[1]:
        _assert_same([labels, other_labels], [emb, other_emb])


@pytest.mark.parametrize("seed", [0, 1] + [pytest.param(s, marks=SLOW) for s in range(2, 8)])
def test_random_cases_match_the_cube_under_xla(seed):
    labels, emb = _case(seed)
    _assert_same([labels], [emb], jit=True)
    _assert_same([labels, labels[::-1]], [emb, emb[::-1] + 0.5], jit=True)


@pytest.mark.parametrize("jit,dtype", [(False, np.float32), (False, np.float64), (True, np.float32),
                                       pytest.param(True, np.float64, marks=SLOW)])
def test_stacked_problems_with_ties_match_the_cube(jit, dtype):
    """P stacked sets with one margin each (the batched training path); float32 and float64."""
    rng = np.random.default_rng(3)
    p, n = 4, 33
    labels = rng.integers(0, 5, size=(p, n))
    labels[0] = 0
    emb = (rng.integers(-3, 4, size=(p, n, 2)) * 0.5).astype(dtype)
    emb[1, 1::2] = emb[1, ::2][: n // 2]
    margins = np.array([1.0, 0.5, 2.0, 0.2], dtype)
    _assert_same([labels], [emb], margins, jit)


@pytest.mark.parametrize("jit", [False, True])
def test_random_distances_at_training_batch_size(jit):
    """Gaussian embeddings, B = 128, 20 classes (few items per class, frequent fallback)."""
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 20, size=128)
    emb = rng.normal(size=(128, 16)).astype("float32")
    _assert_same([labels], [emb], jit=jit)
    _assert_same([labels, rng.permutation(labels)], [emb, rng.normal(size=(128, 16)).astype("float32")], jit=jit)


@pytest.mark.parametrize("miner", sorted(MINERS))
@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_equal_negatives_give_the_gradient_to_the_first_one(miner, dtype):
    """One anchor 0, positive 1 (d_ap = 1), negatives 2 and 3 both at 1.44 > 1: the semi-hard negative
    is the first of the tie (column 2). Loss = 1 - 1.44 + 1 = 0.56; d loss / d dist = +1 at (0, 1),
    -1 at (0, 2), 0 at (0, 3)."""
    dist = tf.Variable(tf.constant([[0.0, 1.0, 1.44, 1.44]], dtype))
    positives = tf.constant([[False, True, False, False]])
    negatives = tf.constant([[False, False, True, True]])
    with tf.GradientTape() as tape:
        loss = MINERS[miner](dist, positives, negatives, 1.0)
    assert float(loss) == pytest.approx(0.56, abs=1e-6)
    np.testing.assert_allclose(tape.gradient(loss, dist).numpy(), [[0.0, 1.0, -1.0, 0.0]], atol=1e-6)


def test_negative_at_the_positive_distance_is_not_semi_hard():
    """Negatives at 1 (equal to d_ap, not strictly farther) and 2: the semi-hard one is at 2 → 1 - 2 + 1 = 0;
    with only the negative at 1 the fallback (farthest negative) takes it → 1 - 1 + 1 = 1."""
    positives = tf.constant([[False, True, False, False]])
    both = tf.constant([[False, False, True, True]])
    first_only = tf.constant([[False, False, True, False]])
    dist = tf.constant([[0.0, 1.0, 1.0, 2.0]])
    assert float(_semi_hard_from_masks(dist, positives, both, 1.0)) == pytest.approx(0.0)
    assert float(_semi_hard_from_masks(dist, positives, first_only, 1.0)) == pytest.approx(1.0)


@pytest.mark.parametrize("m", [0, 1, 2, 3, 7, 8, 9, 64])
def test_count_at_most_equals_searchsorted(m):
    """The binary search equals tf.searchsorted(side="right"), static and dynamic row length, with ties and +inf."""
    rng = np.random.default_rng(m)
    ranked = np.sort(rng.integers(0, 4, size=(2, 3, m)).astype("float32"), axis=-1)
    ranked[..., m // 2:] = np.inf
    values = rng.integers(-1, 5, size=(2, 3, m + 2)).astype("float32")
    want = tf.searchsorted(ranked.reshape(6, m), values.reshape(6, m + 2), side="right").numpy().reshape(2, 3, -1)
    np.testing.assert_array_equal(_count_at_most(tf.constant(ranked), tf.constant(values)).numpy(), want)
    dynamic = tf.function(_count_at_most, input_signature=[tf.TensorSpec([2, 3, None], tf.float32)] * 2)
    np.testing.assert_array_equal(dynamic(ranked, values).numpy(), want)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 64, 100])
def test_sort_rows_is_a_stable_ascending_sort(n):
    """Bitonic (static length, eager and XLA) and argsort (dynamic length) paths equal numpy's stable argsort."""
    rng = np.random.default_rng(n)
    x = rng.integers(0, 4, size=(3, 2, n)).astype("float32")
    x[0, 0, : n // 2] = np.inf
    want = np.argsort(x, axis=-1, kind="stable")
    dynamic = tf.function(_sort_rows, input_signature=[tf.TensorSpec([3, 2, None], tf.float32)])
    for fn in (_sort_rows, tf.function(_sort_rows, jit_compile=True), dynamic):
        values, order = fn(tf.constant(x))
        np.testing.assert_array_equal(order.numpy(), want)
        np.testing.assert_array_equal(values.numpy(), np.take_along_axis(x, want, -1))
