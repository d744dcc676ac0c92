"""Tests for AlignedAttention: hand-derived forward pass, numpy reference of eqs. 3.1.11-3.1.14, residual, ablation, saving."""

import keras
import numpy as np
import pytest

from cvs_tf.layers import AlignedAttention
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


def numpy_aligned_attention(g_a, g_b, w_a, w_b, w_ab, w_e):
    """Eqs. 3.1.11-3.1.14 in float64 numpy; a None kernel drops its term."""
    g_a = np.asarray(g_a, np.float64)
    g_b = np.asarray(g_b, np.float64)
    s = np.zeros(np.broadcast_shapes(g_a.shape, g_b.shape))
    if w_a is not None:
        s = s + g_a @ w_a
    if w_b is not None:
        s = s + g_b @ w_b
    if w_ab is not None:
        s = s + (g_a * g_b) @ w_ab
    alpha = numpy_softmax(np.tanh(s) @ w_e)          # (3.1.11), (3.1.12)
    return g_a + alpha * g_a, g_b + alpha * g_b, alpha  # (3.1.13), (3.1.14)


class TestAlignedAttention:
    def test_hand_derived_forward_pass(self):
        """D = 2, one row: g_a = [4, -4], g_b = [2, 2].

        W_a = 5·I gives g_a W_a = [20, -20]; W_b = I gives [2, 2]; W_ab = I gives
        (g_a ⊙ g_b) = [8, -8]. Sum [30, -26]; tanh saturates to t = [1, -1] in float32.
        W_e = [[ln3/2, 0], [-ln3/2, 0]] gives e = t W_e = [ln3/2 + ln3/2, 0] = [ln 3, 0]
        (a sign error in t would give [0, 0]). α = softmax([ln3, 0]) = [3/4, 1/4].
        g_a' = g_a ⊙ (1 + α) = [4·1.75, -4·1.25] = [7, -5];
        g_b' = [2·1.75, 2·1.25] = [3.5, 2.5].
        """
        layer = AlignedAttention(return_attention=True)
        g_a = np.array([[4.0, -4.0]], "float32")
        g_b = np.array([[2.0, 2.0]], "float32")
        layer((g_a, g_b))
        h = np.log(3.0) / 2
        layer.w_a.assign(5.0 * np.eye(2, dtype="float32"))
        layer.w_b.assign(np.eye(2, dtype="float32"))
        layer.w_ab.assign(np.eye(2, dtype="float32"))
        layer.w_e.assign(np.array([[h, 0.0], [-h, 0.0]], "float32"))
        out_a, out_b, alpha = layer((g_a, g_b))
        np.testing.assert_allclose(alpha, [[0.75, 0.25]], atol=1e-6)
        np.testing.assert_allclose(out_a, [[7.0, -5.0]], atol=1e-5)
        np.testing.assert_allclose(out_b, [[3.5, 2.5]], atol=1e-5)

    @pytest.mark.parametrize("switches", [(True, True, True), (False, True, True),
                                          (True, False, True), (True, True, False)])
    def test_matches_numpy_reference(self, switches):
        """The layer equals eqs. 3.1.11-3.1.14 computed in numpy from its exposed kernels (1e-5)."""
        use_a, use_b, use_ab = switches
        layer = AlignedAttention(use_w_a=use_a, use_w_b=use_b, use_w_ab=use_ab, return_attention=True)
        g_a, g_b = pair_inputs(1)
        out_a, out_b, alpha = layer((g_a, g_b))
        ref_a, ref_b, ref_alpha = numpy_aligned_attention(
            g_a, g_b, as_np(layer.w_a), as_np(layer.w_b), as_np(layer.w_ab), as_np(layer.w_e))
        np.testing.assert_allclose(alpha, ref_alpha, atol=1e-5)
        np.testing.assert_allclose(out_a, ref_a, atol=1e-5)
        np.testing.assert_allclose(out_b, ref_b, atol=1e-5)
        np.testing.assert_allclose(np.sum(alpha, axis=-1), 1.0, atol=1e-6)

    def test_residual_with_zero_w_e_is_exactly_g_times_one_plus_one_over_d(self):
        """W_e = 0 → e = 0 → α = 1/D everywhere; with D = 8 (a power of 2) g(1 + 1/8) is exact."""
        layer = AlignedAttention(return_attention=True)
        g_a, g_b = pair_inputs(2)
        layer((g_a, g_b))
        layer.w_e.assign(np.zeros((D, D), "float32"))
        out_a, out_b, alpha = layer((g_a, g_b))
        np.testing.assert_array_equal(alpha, np.full((5, D), 1.0 / D, "float32"))
        np.testing.assert_array_equal(out_a, g_a * np.float32(1 + 1 / D))
        np.testing.assert_array_equal(out_b, g_b * np.float32(1 + 1 / D))

    def test_attention_from_terms_broadcasts_like_per_pair_calls(self):
        """α for every (query, candidate) pair from (Nq,1,D) and (1,Nc,D) equals calling the layer per pair."""
        layer = AlignedAttention(return_attention=True)
        q, _ = pair_inputs(3, batch=3)
        c, _ = pair_inputs(4, batch=4)
        layer((q, q))
        pa = keras.ops.matmul(q, layer.w_a)[:, None, :]
        pb = keras.ops.matmul(c, layer.w_b)[None, :, :]
        alpha = np.asarray(layer.attention_from_terms(pa, pb, q[:, None, :], c[None, :, :]))
        assert alpha.shape == (3, 4, D)
        for i in range(3):
            for j in range(4):
                _, _, ref = layer((q[i:i + 1], c[j:j + 1]))
                np.testing.assert_allclose(alpha[i, j], np.asarray(ref)[0], atol=1e-6)

    def test_attention_from_terms_accepts_dropped_terms(self):
        """pa = 0 and pb = None are accepted when the layer has no W_a/W_b."""
        layer = AlignedAttention(use_w_a=False, use_w_b=False, return_attention=True)
        g_a, g_b = pair_inputs(5)
        _, _, alpha = layer((g_a, g_b))
        np.testing.assert_allclose(layer.attention_from_terms(0, None, g_a, g_b), alpha, atol=1e-7)

    def test_ablation_removes_exactly_d_squared_per_term(self):
        """Each dropped term removes one (D, D) variable: D² trainable parameters, no zero placeholder."""
        g = pair_inputs(6)
        full = AlignedAttention()
        full(g)
        assert param_count(full.trainable_weights) == 4 * D * D
        for kwargs, attr in [({"use_w_a": False}, "w_a"), ({"use_w_b": False}, "w_b"),
                             ({"use_w_ab": False}, "w_ab")]:
            layer = AlignedAttention(**kwargs)
            layer(g)
            assert getattr(layer, attr) is None
            assert len(layer.trainable_weights) == len(full.trainable_weights) - 1
            assert param_count(full.trainable_weights) - param_count(layer.trainable_weights) == D * D
        none = AlignedAttention(use_w_a=False, use_w_b=False, use_w_ab=False)
        none(g)
        assert param_count(none.trainable_weights) == D * D  # only W_e

    def test_no_bias_variables(self):
        layer = AlignedAttention()
        layer(pair_inputs(7))
        assert sorted(v.name for v in layer.weights) == ["w_a", "w_ab", "w_b", "w_e"]
        assert all(tuple(v.shape) == (D, D) for v in layer.weights)

    @pytest.mark.parametrize("bad", [
        ((4, 8), (4, 6)),        # different D
        ((4, 8, 2), (4, 8, 2)),  # rank 3
        ((8,), (8,)),            # rank 1
        ((4, 8), (3, 8)),        # different batch
    ])
    def test_build_rejects_mismatched_shapes(self, bad):
        with pytest.raises(ValueError, match="g_a|g_b"):
            AlignedAttention().build(bad)

    def test_call_rejects_non_pair_and_other_dimension(self):
        layer = AlignedAttention()
        g_a, g_b = pair_inputs(8)
        layer((g_a, g_b))
        with pytest.raises(ValueError, match="pair"):
            layer(g_a)
        with pytest.raises(ValueError, match="same dimension"):
            layer((g_a, g_b[:, :4]))
        with pytest.raises(ValueError, match="built for D=8"):
            layer((g_a[:, :4], g_b[:, :4]))

    def test_attention_from_terms_needs_a_built_layer(self):
        with pytest.raises(ValueError, match="build"):
            AlignedAttention().attention_from_terms(None, None, *pair_inputs(0))

    def test_config_round_trip(self):
        layer = AlignedAttention(use_w_ab=False, return_attention=True,
                                 kernel_initializer=keras.initializers.GlorotUniform(seed=3), name="att")
        clone = run_serialization_test(layer)
        assert (clone.use_w_a, clone.use_w_b, clone.use_w_ab, clone.return_attention) == (True, True, False, True)

    def test_default_kernels_start_distinct(self):
        """Each kernel gets its own initializer draw (a Keras 3 initializer repeats its values)."""
        layer = AlignedAttention()
        layer(pair_inputs(0))
        assert_pairwise_distinct([layer.w_a, layer.w_b, layer.w_ab, layer.w_e])

    def test_seeded_initializer_gives_distinct_kernels(self):
        layer = AlignedAttention(kernel_initializer=keras.initializers.GlorotUniform(seed=1))
        layer(pair_inputs(0))
        assert not np.array_equal(layer.w_a.numpy(), layer.w_b.numpy())
        again = AlignedAttention(kernel_initializer=keras.initializers.GlorotUniform(seed=1))
        again(pair_inputs(0))
        np.testing.assert_array_equal(layer.w_e.numpy(), again.w_e.numpy())

    def _model(self, **kwargs):
        a = keras.Input((D,), name="g_a")
        b = keras.Input((D,), name="g_b")
        outs = AlignedAttention(name="att", **kwargs)((a, b))
        return keras.Model([a, b], list(outs))

    def test_functional_model_saves_and_reloads(self, tmp_path):
        model = self._model(use_w_b=False, return_attention=True)
        g_a, g_b = pair_inputs(9)
        reloaded = run_model_saving_test(model, [g_a, g_b], tmp_path / "att.keras")
        layer = reloaded.get_layer("att")
        assert isinstance(layer, AlignedAttention) and layer.w_b is None and layer.return_attention

    def test_one_fit_step(self):
        model = self._model()
        g_a, g_b = pair_inputs(10, batch=6)
        run_fit_step_test(model, [g_a, g_b], [g_a * 2, g_b * 2])
