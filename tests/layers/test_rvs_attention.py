"""Tests for RVSAttention and RVSReference: eqs. 3.3.1-3.3.6 in numpy, sharing, freezing, ablation, saving."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cvs_tf.layers import RVSAttention, RVSReference
from tests.layers.layer_checks import (
    as_np,
    assert_pairwise_distinct,
    numpy_softmax,
    pair_inputs,
    param_count,
    run_fit_step_test,
    run_model_saving_test,
    run_serialization_test,
)

D = 8


def numpy_rvs_attention(g_r, g_s, w_r, w_s, w_rs, w_ie, w_se):
    """Eqs. 3.3.1-3.3.6 in float64 numpy; a None kernel drops its term."""
    g_r = np.asarray(g_r, np.float64)
    g_s = np.asarray(g_s, np.float64)
    s = np.zeros(np.broadcast_shapes(g_r.shape, g_s.shape))
    if w_r is not None:
        s = s + g_r @ w_r
    if w_s is not None:
        s = s + g_s @ w_s
    if w_rs is not None:
        s = s + (g_r * g_s) @ w_rs
    t = np.tanh(s)
    alpha_ie = numpy_softmax(t @ w_ie)  # (3.3.1), (3.3.3)
    alpha_se = numpy_softmax(t @ w_se)  # (3.3.2), (3.3.4)
    return g_r + alpha_ie * g_r, g_s + alpha_se * g_s, alpha_ie, alpha_se  # (3.3.5), (3.3.6)


def _kernels(block):
    return [as_np(k) for k in (block.w_r, block.w_s, block.w_rs, block.w_ie, block.w_se)]


class TestRVSAttention:
    def test_hand_derived_forward_pass(self):
        """D = 2, one row: g_r = [4, -4], g_s = [2, 2]; W_r = 5·I, W_s = I, W_rs = I.

        As for AlignedAttention the tanh term is tanh([20 + 2 + 8, -20 + 2 - 8]) = [1, -1].
        W_ie = [[ln3/2, 0], [-ln3/2, 0]] → e_ie = [ln 3, 0] → α_ie = [3/4, 1/4];
        W_se = [[0, ln3/2], [0, -ln3/2]] → e_se = [0, ln 3] → α_se = [1/4, 3/4].
        g_r' = [4·1.75, -4·1.25] = [7, -5]; g_s' = [2·1.25, 2·1.75] = [2.5, 3.5].
        """
        block = RVSAttention(return_attention=True)
        g_r = np.array([[4.0, -4.0]], "float32")
        g_s = np.array([[2.0, 2.0]], "float32")
        block((g_r, g_s))
        h = np.log(3.0) / 2
        block.w_r.assign(5.0 * np.eye(2, dtype="float32"))
        block.w_s.assign(np.eye(2, dtype="float32"))
        block.w_rs.assign(np.eye(2, dtype="float32"))
        block.w_ie.assign(np.array([[h, 0.0], [-h, 0.0]], "float32"))
        block.w_se.assign(np.array([[0.0, h], [0.0, -h]], "float32"))
        out_r, out_s, a_ie, a_se = block((g_r, g_s))
        np.testing.assert_allclose(a_ie, [[0.75, 0.25]], atol=1e-6)
        np.testing.assert_allclose(a_se, [[0.25, 0.75]], atol=1e-6)
        np.testing.assert_allclose(out_r, [[7.0, -5.0]], atol=1e-5)
        np.testing.assert_allclose(out_s, [[2.5, 3.5]], atol=1e-5)

    @pytest.mark.parametrize("switches", [(True, True, True), (False, True, True),
                                          (True, False, True), (True, True, False)])
    def test_matches_numpy_reference(self, switches):
        """The block equals eqs. 3.3.1-3.3.6 computed in numpy from its exposed kernels (1e-5)."""
        use_r, use_s, use_rs = switches
        block = RVSAttention(use_w_r=use_r, use_w_s=use_s, use_w_rs=use_rs, return_attention=True)
        g_r, g_s = pair_inputs(1)
        got = block((g_r, g_s))
        ref = numpy_rvs_attention(g_r, g_s, *_kernels(block))
        for g, r in zip(got, ref):
            np.testing.assert_allclose(g, r, atol=1e-5)

    def test_matches_numpy_reference_with_shared_reference(self):
        ref = RVSReference()
        b1, b2 = RVSAttention(reference=ref, return_attention=True), RVSAttention(reference=ref, return_attention=True)
        g_r, g_s = pair_inputs(2)
        b1((g_r, g_s))
        got = b2((g_r, g_s))
        for g, r in zip(got, numpy_rvs_attention(g_r, g_s, *_kernels(b2))):
            np.testing.assert_allclose(g, r, atol=1e-5)

    def test_residual_with_zero_output_projections(self):
        """W_ie = W_se = 0 → α_ie = α_se = 1/D; with D = 8 the outputs are exactly g(1 + 1/8)."""
        block = RVSAttention(return_attention=True)
        g_r, g_s = pair_inputs(3)
        block((g_r, g_s))
        block.w_ie.assign(np.zeros((D, D), "float32"))
        block.w_se.assign(np.zeros((D, D), "float32"))
        out_r, out_s, a_ie, a_se = block((g_r, g_s))
        np.testing.assert_array_equal(a_ie, np.full((5, D), 1.0 / D, "float32"))
        np.testing.assert_array_equal(a_se, np.full((5, D), 1.0 / D, "float32"))
        np.testing.assert_array_equal(out_r, g_r * np.float32(1 + 1 / D))
        np.testing.assert_array_equal(out_s, g_s * np.float32(1 + 1 / D))

    def test_attention_from_terms_broadcasts_like_per_pair_calls(self):
        block = RVSAttention(return_attention=True)
        r, _ = pair_inputs(4, batch=3)
        s, _ = pair_inputs(5, batch=4)
        block((r, r))
        pr = keras.ops.matmul(r, block.w_r)[:, None, :]
        ps = keras.ops.matmul(s, block.w_s)[None, :, :]
        a_ie, a_se = block.attention_from_terms(pr, ps, r[:, None, :], s[None, :, :])
        assert tuple(a_ie.shape) == (3, 4, D) and tuple(a_se.shape) == (3, 4, D)
        for i in range(3):
            for j in range(4):
                _, _, ref_ie, ref_se = block((r[i:i + 1], s[j:j + 1]))
                np.testing.assert_allclose(np.asarray(a_ie)[i, j], np.asarray(ref_ie)[0], atol=1e-6)
                np.testing.assert_allclose(np.asarray(a_se)[i, j], np.asarray(ref_se)[0], atol=1e-6)

    def test_ablation_removes_exactly_d_squared_per_term(self):
        """Standalone block: 5 kernels; each switch drops one (D, D) variable (use_w_r drops the owned W_r)."""
        g = pair_inputs(6)
        full = RVSAttention()
        full(g)
        assert param_count(full.trainable_weights) == 5 * D * D
        for kwargs, attr in [({"use_w_r": False}, "w_r"), ({"use_w_s": False}, "w_s"),
                             ({"use_w_rs": False}, "w_rs")]:
            block = RVSAttention(**kwargs)
            block(g)
            assert getattr(block, attr) is None
            assert len(block.trainable_weights) == len(full.trainable_weights) - 1
            assert param_count(full.trainable_weights) - param_count(block.trainable_weights) == D * D

    def test_shared_reference_variables_are_the_same_objects(self):
        """Blocks built with one RVSReference use its W_r/W_ie; W_s, W_rs, W_se are per block."""
        ref = RVSReference()
        b1, b2 = RVSAttention(reference=ref), RVSAttention(reference=ref)
        b1(pair_inputs(7))
        b2(pair_inputs(8))
        assert b1.w_r is b2.w_r is ref.w_r
        assert b1.w_ie is b2.w_ie is ref.w_ie
        for name in ("w_s", "w_rs", "w_se"):
            assert getattr(b1, name) is not getattr(b2, name)
        # A model holding both blocks counts the shared variables once: 2 + 3 + 3 kernels.
        assert param_count(self._two_block_model(ref, b1, b2).trainable_weights) == 8 * D * D

    def test_gradients_reach_shared_kernels_from_both_blocks(self):
        """d/dW_r through block 1 alone and block 2 alone are non-zero, and the joint loss's gradient is their sum."""
        ref = RVSReference()
        b1, b2 = RVSAttention(reference=ref), RVSAttention(reference=ref)
        x1, x2 = pair_inputs(9), pair_inputs(10)
        b1(x1)
        b2(x2)

        def grads(use1, use2):
            with tf.GradientTape() as tape:
                loss = 0.0
                if use1:
                    loss += tf.reduce_sum(tf.square(b1(x1)[0])) + tf.reduce_sum(b1(x1)[1])
                if use2:
                    loss += tf.reduce_sum(tf.square(b2(x2)[0])) + tf.reduce_sum(b2(x2)[1])
            return [g.numpy() for g in tape.gradient(loss, [ref.w_r, ref.w_ie])]

        g1, g2, g12 = grads(True, False), grads(False, True), grads(True, True)
        for a, b, ab in zip(g1, g2, g12):
            assert np.abs(a).max() > 0 and np.abs(b).max() > 0
            assert not np.allclose(a, b)
            np.testing.assert_allclose(ab, a + b, rtol=1e-5, atol=1e-6)

    def test_freezing_the_reference_after_toggling_blocks(self):
        """Model-style freezing: blocks toggled, then reference.trainable = False; a fit step keeps W_r, W_ie bit-identical."""
        ref = RVSReference()
        b1, b2 = RVSAttention(reference=ref), RVSAttention(reference=ref)
        model = self._two_block_model(ref, b1, b2)
        b1.trainable = False  # propagates to the shared reference: frozen for b2 too
        assert not {id(ref.w_r), id(ref.w_ie)} & {id(v) for v in b2.trainable_weights}
        b2.trainable = False
        b2.trainable = True  # a real False -> True change propagates to the reference again ...
        assert id(ref.w_r) in {id(v) for v in b2.trainable_weights}
        ref.trainable = False  # ... so the model freezes it explicitly afterwards
        shared = {id(ref.w_r), id(ref.w_ie)}
        assert not shared & {id(v) for v in b1.trainable_weights}
        assert not shared & {id(v) for v in b2.trainable_weights}
        assert {id(v) for v in b2.trainable_weights} == {id(b2.w_s), id(b2.w_rs), id(b2.w_se)}
        assert not shared & {id(v) for v in model.trainable_weights}
        frozen = [v.numpy().copy() for v in (ref.w_r, ref.w_ie, b1.w_s, b1.w_rs, b1.w_se)]
        xs = [*pair_inputs(11, batch=6), *pair_inputs(12, batch=6)]
        run_fit_step_test(model, xs, [x * 2 for x in xs])
        for before, v in zip(frozen, (ref.w_r, ref.w_ie, b1.w_s, b1.w_rs, b1.w_se)):
            np.testing.assert_array_equal(v.numpy(), before)

    @staticmethod
    def _two_block_model(ref, b1, b2):
        r1, s1, r2, s2 = (keras.Input((D,), name=n) for n in ("r1", "s1", "r2", "s2"))
        o1 = b1((r1, s1))
        o2 = b2((r2, s2))
        return keras.Model([r1, s1, r2, s2], [*o1, *o2])

    def test_shared_model_saves_and_reloads_with_sharing_kept(self, tmp_path):
        ref = RVSReference(name="ref")
        b1 = RVSAttention(reference=ref, name="b1")
        b2 = RVSAttention(reference=ref, name="b2", use_w_rs=False)
        model = self._two_block_model(ref, b1, b2)
        xs = [*pair_inputs(13), *pair_inputs(14)]
        reloaded = run_model_saving_test(model, xs, tmp_path / "rvs_shared.keras")
        n1, n2 = reloaded.get_layer("b1"), reloaded.get_layer("b2")
        assert n1.reference is n2.reference
        assert n1.w_r is n2.w_r
        np.testing.assert_array_equal(n1.w_r.numpy(), ref.w_r.numpy())
        assert n2.w_rs is None

    def test_standalone_model_saves_and_reloads(self, tmp_path):
        r, s = keras.Input((D,)), keras.Input((D,))
        outs = RVSAttention(name="rvs", use_w_s=False, return_attention=True)((r, s))
        model = keras.Model([r, s], list(outs))
        reloaded = run_model_saving_test(model, list(pair_inputs(15)), tmp_path / "rvs.keras")
        block = reloaded.get_layer("rvs")
        assert block.owns_reference and block.w_s is None and block.return_attention

    def test_one_fit_step(self):
        r, s = keras.Input((D,)), keras.Input((D,))
        model = keras.Model([r, s], list(RVSAttention()((r, s))))
        xs = list(pair_inputs(16, batch=6))
        run_fit_step_test(model, xs, [x * 2 for x in xs])

    def test_default_kernels_start_distinct(self):
        """Each kernel gets its own initializer draw (a Keras 3 initializer repeats its values)."""
        block = RVSAttention()
        block(pair_inputs(0))
        assert_pairwise_distinct([block.w_r, block.w_s, block.w_rs, block.w_ie, block.w_se])

    def test_config_round_trip(self):
        block = RVSAttention(use_w_rs=False, return_attention=True, name="blk")
        clone = run_serialization_test(block)
        assert clone.owns_reference and not clone.use_w_rs
        ref = RVSReference(use_w_r=True, name="shared_ref")
        shared = RVSAttention(reference=ref)
        config = shared.get_config()
        assert config["reference"]["shared_object_id"] == id(ref)
        clone = RVSAttention.from_config(config)  # outside a load: a new, unshared reference
        assert not clone.owns_reference and clone.reference.name == "shared_ref"
        assert clone.reference is not ref
        strip = {k: v for k, v in config.items() if k != "reference"}
        assert {k: v for k, v in clone.get_config().items() if k != "reference"} == strip
        run_serialization_test(RVSReference(use_w_r=False))

    @pytest.mark.parametrize("bad", [((4, 8), (4, 6)), ((4, 8, 2), (4, 8, 2)), ((8,), (8,))])
    def test_build_rejects_mismatched_shapes(self, bad):
        with pytest.raises(ValueError, match="g_r|g_s"):
            RVSAttention().build(bad)

    def test_shared_reference_dimension_and_w_r_are_checked(self):
        ref = RVSReference()
        RVSAttention(reference=ref)(pair_inputs(0))
        with pytest.raises(ValueError, match="D=8 but the inputs have D=4"):
            RVSAttention(reference=ref)(pair_inputs(0, dim=4))
        with pytest.raises(ValueError, match="has no w_r"):
            RVSAttention(reference=RVSReference(use_w_r=False))(pair_inputs(0))
        # A block that drops the reference term may share a reference that has one.
        block = RVSAttention(reference=ref, use_w_r=False)
        block(pair_inputs(0))
        assert block.w_r is None and ref.w_r is not None
        with pytest.raises(ValueError, match="RVSReference"):
            RVSAttention(reference="not a reference")

    def test_reference_builds_from_int_or_shape_and_is_not_callable(self):
        a, b = RVSReference(), RVSReference()
        a.build(6)
        b.build((None, 6))
        assert tuple(a.w_r.shape) == tuple(b.w_ie.shape) == (6, 6)
        with pytest.raises(ValueError):
            RVSReference().build((None, None))
        with pytest.raises(ValueError, match="not called"):
            a(np.zeros((1, 6), "float32"))
