"""Tests for cvs_tf.evaluation.protocols: pairwise is exact against one-pair-at-a-time layer calls, rerank, fallback, no labels."""

import inspect

import numpy as np
import pytest

from cvs_tf.evaluation import (
    LEAK_TITLE,
    ModelScorer,
    parse_protocol,
    resolve_protocol,
    score_matrix,
    top_k_indices,
)
from cvs_tf.evaluation.protocols import RERANK_OFFSET
from tests.evaluation.fakes import cvs_fake, one_pair_at_a_time, rvs_fake

DIMS = {"image": 6, "text": 5, "audio": 3}


def _features(rng, n, d):
    return rng.normal(size=(n, d)).astype(np.float32)


@pytest.mark.parametrize("q_mod,r_mod", [("image", "text"), ("text", "image"), ("audio", "image")])
def test_pairwise_equals_one_pair_at_a_time_aligned(q_mod, r_mod):
    rng = np.random.default_rng(0)
    model = cvs_fake(DIMS)
    q_x, r_x = _features(rng, 7, DIMS[q_mod]), _features(rng, 9, DIMS[r_mod])
    got = score_matrix(model, q_mod, q_x, r_mod, r_x, "pairwise", pair_chunk=10)   # several chunks
    want = one_pair_at_a_time(model, q_mod, q_x, r_mod, r_x)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    # attention really changes the scores (otherwise the test proves nothing)
    indep = score_matrix(model, q_mod, q_x, r_mod, r_x, "independent")
    assert np.abs(got - indep).max() > 1e-2


@pytest.mark.parametrize("switches", [{"use_w_a": False}, {"use_w_b": False}, {"use_w_ab": False},
                                      {"use_w_a": False, "use_w_b": False, "use_w_ab": False}])
def test_pairwise_exact_with_ablation_switches(switches):
    rng = np.random.default_rng(1)
    model = cvs_fake(DIMS, seed=3, **switches)
    q_x, r_x = _features(rng, 5, DIMS["text"]), _features(rng, 6, DIMS["image"])
    got = score_matrix(model, "text", q_x, "image", r_x, "pairwise")
    np.testing.assert_allclose(got, one_pair_at_a_time(model, "text", q_x, "image", r_x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("q_mod,r_mod", [("image", "audio"), ("audio", "image")])
def test_pairwise_equals_one_pair_at_a_time_rvs(q_mod, r_mod):
    rng = np.random.default_rng(2)
    model = rvs_fake(DIMS, reference="image")
    q_x, r_x = _features(rng, 6, DIMS[q_mod]), _features(rng, 8, DIMS[r_mod])
    got = score_matrix(model, q_mod, q_x, r_mod, r_x, "pairwise", pair_chunk=7)
    np.testing.assert_allclose(got, one_pair_at_a_time(model, q_mod, q_x, r_mod, r_x), rtol=0, atol=1e-5)


def test_rvs_pairs_without_a_block_fall_back_to_independent():
    rng = np.random.default_rng(3)
    model = rvs_fake(DIMS, reference="image")
    q_x, r_x = _features(rng, 4, DIMS["text"]), _features(rng, 5, DIMS["audio"])
    assert resolve_protocol(model, "text", "audio", "pairwise") == "independent"
    assert resolve_protocol(model, "image", "audio", "pairwise") == "pairwise"
    assert resolve_protocol(model, "audio", "image", "rerank@3") == "rerank@3"
    np.testing.assert_array_equal(score_matrix(model, "text", q_x, "audio", r_x, "pairwise"),
                                  score_matrix(model, "text", q_x, "audio", r_x, "independent"))


def test_independent_is_cosine_of_embed():
    rng = np.random.default_rng(4)
    model = cvs_fake(DIMS)
    q_x, r_x = _features(rng, 4, 6), _features(rng, 3, 5)
    eq = np.asarray(model.embed("image", q_x), np.float64)
    er = np.asarray(model.embed("text", r_x), np.float64)
    want = (eq / np.linalg.norm(eq, axis=1, keepdims=True)) @ (er / np.linalg.norm(er, axis=1, keepdims=True)).T
    np.testing.assert_allclose(score_matrix(model, "image", q_x, "text", r_x), want, rtol=0, atol=1e-12)


def test_rerank_rescores_the_independent_top_k_only():
    rng = np.random.default_rng(5)
    model = cvs_fake(DIMS, seed=7)
    q_x, r_x = _features(rng, 6, DIMS["image"]), _features(rng, 11, DIMS["text"])
    k = 4
    indep = score_matrix(model, "image", q_x, "text", r_x, "independent")
    pair = score_matrix(model, "image", q_x, "text", r_x, "pairwise")
    got = score_matrix(model, "image", q_x, "text", r_x, f"rerank@{k}", pair_chunk=5)
    top = top_k_indices(indep, k)
    for i in range(len(q_x)):
        inside = np.zeros(len(r_x), bool)
        inside[top[i]] = True
        np.testing.assert_allclose(got[i, inside], pair[i, inside], rtol=0, atol=1e-5)
        np.testing.assert_allclose(got[i, ~inside], indep[i, ~inside] - RERANK_OFFSET, rtol=0, atol=0)
        assert got[i, inside].min() > got[i, ~inside].max()          # the re-ranked top K stays on top
    # a K at least the retrieval size is plain pairwise
    np.testing.assert_allclose(score_matrix(model, "image", q_x, "text", r_x, "rerank@50"), pair, rtol=0, atol=1e-5)


def test_pairwise_reverse_direction_is_the_transpose():
    rng = np.random.default_rng(6)
    model = cvs_fake(DIMS)
    feats = {"image": _features(rng, 5, 6), "text": _features(rng, 7, 5)}
    scorer = ModelScorer(model, feats, "pairwise")
    it, ti = scorer.scores("image", "text"), scorer.scores("text", "image")
    np.testing.assert_array_equal(ti, it.T)
    np.testing.assert_allclose(ti, score_matrix(model, "text", feats["text"], "image", feats["image"], "pairwise"),
                               rtol=0, atol=1e-6)


def test_no_labels_reach_the_protocols():
    for fn in (score_matrix, ModelScorer.__init__, resolve_protocol):
        params = " ".join(inspect.signature(fn).parameters).lower()
        assert "label" not in params and "y" not in inspect.signature(fn).parameters


@pytest.mark.parametrize("text,name,k", [("independent", "independent", None), ("Pairwise", "pairwise", None),
                                         ("rerank@50", "rerank", 50), (" rerank@1 ", "rerank", 1)])
def test_parse_protocol(text, name, k):
    p = parse_protocol(text)
    assert (p.name, p.k) == (name, k)
    assert str(parse_protocol(str(p))) == str(p)


@pytest.mark.parametrize("bad", ["rerank", "rerank@0", "rerank@-3", "cosine", ""])
def test_parse_protocol_rejects(bad):
    with pytest.raises(ValueError, match="unknown protocol"):
        parse_protocol(bad)


def test_oracle_pairs_is_refused_and_says_it_leaks():
    with pytest.raises(ValueError, match=LEAK_TITLE):
        parse_protocol("oracle-pairs")


def test_unknown_modality_is_a_clear_error():
    model = cvs_fake(DIMS)
    with pytest.raises(ValueError, match="no trained modality 'video'"):
        score_matrix(model, "video", np.ones((2, 3)), "image", np.ones((2, 6)))
