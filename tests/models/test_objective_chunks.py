"""The objective computes the pairs in groups sized by the kind's declared cost, one after the other; the terms equal the all-pairs form."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cvs_tf.data.store import load_feature_set
from cvs_tf.losses import PairCost
from cvs_tf.models import build_model, objective
from cvs_tf.models.objective import INSTANCE_COST, Objective, after
from tests.helpers import make_toy_featureset, tiny_config


def test_groups_follow_the_kinds_declared_cost():
    pairs = [(str(i), "x") for i in range(10)]
    semihard = Objective()                                 # 252 bytes per (anchor, candidate) entry and pair
    assert semihard.kind.cost_for(semihard.options) == PairCost(square=252)
    assert semihard.groups(pairs, 4096) == [[p] for p in pairs]     # 4 GiB per pair: one at a time
    assert semihard.groups(pairs, 1024) == [pairs[:4], pairs[4:8], pairs[8:]]   # 252 MiB per pair
    assert semihard.groups(pairs, 512) == [pairs] == semihard.groups(pairs, None)
    instance = Objective({"instance_weight": 1.0})  # the instance term's cost comes on top
    assert instance.pair_bytes(1024) == (252 + INSTANCE_COST.square) * 1024**2
    assert len(instance.groups(pairs, 1024)) == 4   # 292 MiB per pair: groups of 3


def test_a_cube_kind_is_grouped_as_the_old_rule(monkeypatch):
    """A kind declaring the old 4 terms × 10 bytes × B³, under the old 64 MiB limit, gets the groups of the rule every kind had before."""
    from cvs_tf.losses import get_pair_loss, register_pair_loss, registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    register_pair_loss("cube", get_pair_loss("semihard_triplet").fn, terms=("intra_{a}", "intra_{b}", "inter"),
                       cost=PairCost(cube=40))
    pairs = [(str(i), "x") for i in range(10)]
    cube = Objective({"kind": "cube"})
    old = 64 << 20
    assert cube.groups(pairs, 128, limit=old) == [[p] for p in pairs]
    assert cube.groups(pairs, 64, limit=old) == [pairs[:6], pairs[6:]]
    assert cube.groups(pairs, 32, limit=old) == [pairs]


def test_after_is_an_exact_zero_and_no_gradient_path():
    t, prev = tf.constant([1.5, -2.0]), tf.constant([float("inf"), 3.0])
    np.testing.assert_array_equal(after(t, prev).numpy(), t.numpy())
    with tf.GradientTape() as tape:
        tape.watch(prev)
        y = tf.reduce_sum(after(t, prev))
    assert tape.gradient(y, prev) is None


def test_grouped_terms_equal_the_all_pairs_terms(tmp_path, monkeypatch):
    fs = load_feature_set(make_toy_featureset(tmp_path / "t", n_classes=8, n_train=160))
    keras.utils.set_random_seed(0)
    model = build_model(tiny_config(dim=8).validate(), fs)
    rng = np.random.default_rng(0)
    b = 128
    labels = {m: tf.constant(rng.integers(0, 8, b), tf.int32) for m in model.modalities}
    logits = {m: tf.constant(rng.normal(size=(b, 8)), tf.float32) for m in model.modalities}
    emb = {objective.pair_key(a, c): tuple(tf.math.l2_normalize(tf.constant(rng.normal(size=(b, 8)), tf.float32), -1)
                                           for _ in range(2)) for a, c in model.active_pairs()}
    assert len(model.objective.groups(model.active_pairs(), b, 8, limit=4 << 20)) == 3
    monkeypatch.setattr(objective, "GROUP_BYTES", 4 << 20)   # 3.9 MiB per pair at B = 128: one at a time
    grouped = model.loss_terms(labels, logits, emb)
    monkeypatch.setattr(objective, "GROUP_BYTES", 1 << 40)
    whole = model.loss_terms(labels, logits, emb)
    assert grouped.keys() == whole.keys() and len(grouped) == 3 + 3 * 3
    for k in whole:
        assert float(grouped[k]) == pytest.approx(float(whole[k]), abs=1e-6), k
