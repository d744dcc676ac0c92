"""Oracle lane: our semi-hard triplet loss against tfa.losses.TripletSemiHardLoss on TF 2.15.

Run with ``make test-oracle``: it builds ``.venv-oracle`` (tensorflow-cpu 2.15.1,
tensorflow-addons 0.23.0) and runs pytest from this directory. ``cvs_tf/losses/triplet.py`` is
loaded by file path so that the ``cvs_tf`` package ``__init__`` chain (Keras 3, TF 2.21) is
never imported here. In the main lane this module is skipped (no tensorflow_addons) and the
``oracle`` marker is deselected by setup.cfg.
"""

import importlib.util
import os
import warnings

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tfa = pytest.importorskip("tensorflow_addons")  # noqa: E402  (absent in the main virtualenv)
import tensorflow as tf  # noqa: E402

pytestmark = pytest.mark.oracle

_TRIPLET = os.path.join(os.path.dirname(__file__), "..", "..", "cvs_tf", "losses", "triplet.py")


def _load_triplet_module():
    spec = importlib.util.spec_from_file_location("cvs_tf_triplet_under_test", _TRIPLET)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


triplet = _load_triplet_module()


def _tfa_loss(labels, emb, margin=1.0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fn = tfa.losses.TripletSemiHardLoss(margin=margin, distance_metric="squared-L2")
        return float(fn(tf.constant(labels), tf.constant(emb)))


def _ours(labels, emb, margin=1.0):
    return float(triplet.semi_hard_triplet_loss(tf.constant(labels), tf.constant(emb), margin))


def _has_anchor_without_semi_hard_negative(labels, emb):
    """True when some (anchor, positive) pair has no negative farther than the positive."""
    d = ((emb[:, None, :] - emb[None, :, :]) ** 2).sum(-1)
    same = labels[:, None] == labels[None, :]
    n = len(labels)
    for i in range(n):
        for k in range(n):
            if i != k and same[i, k] and not np.any(~same[i] & (d[i] > d[i, k])):
                return True
    return False


def test_loaded_without_the_package_chain():
    """The module under test came from the file, and no Keras 3 / cvs_tf package was imported."""
    import sys

    assert triplet.__file__.endswith(os.path.join("cvs_tf", "losses", "triplet.py"))
    assert "cvs_tf" not in sys.modules  # --confcutdir keeps tests/conftest.py out too
    assert tf.__version__.startswith("2.15")
    keras = sys.modules.get("keras")
    assert keras is None or keras.__version__.startswith("2.")


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("normalise", [True, False])
def test_matches_tfa_on_seeded_batches(seed, normalise):
    """Random batches (some labels singletons, mixed scales) agree with TF-Addons to 1e-5."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(6, 40))
    n_classes = int(rng.integers(2, 6))
    labels = rng.integers(0, n_classes, size=n).astype(np.int32)
    emb = rng.normal(size=(n, 8)).astype(np.float32) * rng.uniform(0.2, 3.0)
    if normalise:
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    for margin in (1.0, 0.3):
        ref = _tfa_loss(labels, emb, margin)
        assert np.isfinite(ref)
        assert abs(_ours(labels, emb, margin) - ref) <= 1e-5 * max(1.0, abs(ref))


@pytest.mark.parametrize("n_classes", [20, 8, 3, 1])
def test_matches_tfa_at_thesis_batch_size(n_classes):
    """Batch 128 with 20, 8, 3 classes and a single class (no negative at all) agrees with TF-Addons."""
    rng = np.random.default_rng(n_classes)
    labels = rng.integers(0, n_classes, size=128).astype(np.int32)
    emb = rng.normal(size=(128, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    ref = _tfa_loss(labels, emb)
    assert np.isfinite(ref)
    assert abs(_ours(labels, emb) - ref) <= 1e-5 * max(1.0, abs(ref))


def test_matches_tfa_when_anchors_have_no_semi_hard_negative():
    """Tight positive pairs far from each other and negatives close: the fallback is exercised."""
    rng = np.random.default_rng(123)
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2], dtype=np.int32)
    emb = rng.normal(size=(8, 4)).astype(np.float32) * 5.0  # not normalised, large spread
    assert _has_anchor_without_semi_hard_negative(labels, emb)
    ref = _tfa_loss(labels, emb)
    assert abs(_ours(labels, emb) - ref) <= 1e-5 * max(1.0, abs(ref))


@pytest.mark.parametrize("seed", range(4))
def test_matches_tfa_with_fallback_in_random_batches(seed):
    """Seeded batches selected to contain anchors whose positives lie beyond every negative."""
    rng = np.random.default_rng(1000 + seed)
    for _ in range(200):
        labels = rng.integers(0, 3, size=10).astype(np.int32)
        emb = (rng.normal(size=(10, 3)) * rng.uniform(0.5, 4.0)).astype(np.float32)
        if _has_anchor_without_semi_hard_negative(labels, emb):
            break
    else:
        pytest.fail("no batch with an anchor lacking a semi-hard negative was drawn")
    ref = _tfa_loss(labels, emb)
    assert abs(_ours(labels, emb) - ref) <= 1e-5 * max(1.0, abs(ref))


def test_matches_tfa_on_single_class_batch():
    """No negatives at all: both use d_an = 0, i.e. mean(d_ap) + margin."""
    rng = np.random.default_rng(7)
    labels = np.zeros(5, dtype=np.int32)
    emb = rng.normal(size=(5, 6)).astype(np.float32)
    ref = _tfa_loss(labels, emb)
    assert abs(_ours(labels, emb) - ref) <= 1e-5 * max(1.0, abs(ref))


def test_documented_difference_no_positive_pair():
    """Every label distinct: TF-Addons divides 0 by 0 (NaN); ours returns 0 by design."""
    labels = np.arange(4, dtype=np.int32)
    emb = np.random.default_rng(3).normal(size=(4, 3)).astype(np.float32)
    assert np.isnan(_tfa_loss(labels, emb))
    assert _ours(labels, emb) == 0.0
