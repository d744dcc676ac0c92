"""Tests for ModalityBranch: Dense(relu) -> [BN] -> [Dropout] -> Dense, shapes, switches, saving, fit."""

import keras
import numpy as np
import pytest

from cvs_tf.layers import ModalityBranch
from tests.layers.layer_checks import (
    run_fit_step_test,
    run_model_saving_test,
    run_serialization_test,
)


def _x(seed=0, batch=6, d=5):
    return np.random.default_rng(seed).normal(size=(batch, d)).astype("float32")


class TestModalityBranch:
    def test_computes_two_dense_layers(self):
        """g = relu(x W1 + b1) W2 + b2, checked in numpy from the sublayers' kernels."""
        branch = ModalityBranch(dim=4, hidden_dim=7)
        x = _x()
        g = np.asarray(branch(x))
        w1, b1 = (v.numpy() for v in branch.hidden.weights)
        w2, b2 = (v.numpy() for v in branch.proj.weights)
        np.testing.assert_allclose(g, np.maximum(x @ w1 + b1, 0) @ w2 + b2, atol=1e-5)
        assert g.shape == (6, 4) and branch.hidden.units == 7
        assert branch.batchnorm is None and branch.drop is None

    def test_defaults_to_512_and_hidden_equal_to_dim(self):
        branch = ModalityBranch()
        branch.build((None, 3))
        assert branch.hidden.units == 512 and branch.proj.units == 512

    def test_dropout_only_in_training(self):
        branch = ModalityBranch(dim=16, dropout=0.5)
        x = _x(1, d=3)
        np.testing.assert_array_equal(branch(x, training=False), branch(x))
        assert not np.allclose(branch(x, training=True), branch(x, training=False))

    def test_batchnorm_switch_adds_a_layer(self):
        branch = ModalityBranch(dim=4, use_batchnorm=True)
        branch(_x(2))
        assert isinstance(branch.batchnorm, keras.layers.BatchNormalization)
        plain = ModalityBranch(dim=4)
        plain(_x(2))
        assert len(branch.trainable_weights) == len(plain.trainable_weights) + 2  # gamma, beta

    @pytest.mark.parametrize("kwargs", [{"dim": 0}, {"hidden_dim": -1}, {"dropout": 1.0}])
    def test_rejects_bad_arguments(self, kwargs):
        with pytest.raises(ValueError):
            ModalityBranch(**kwargs)

    @pytest.mark.parametrize("shape", [(None, 4, 3), (None, None), (5,)])
    def test_rejects_bad_input_shapes(self, shape):
        with pytest.raises(ValueError, match="ModalityBranch expects"):
            ModalityBranch(dim=4).build(shape)

    def test_config_round_trip(self):
        clone = run_serialization_test(ModalityBranch(dim=8, hidden_dim=3, dropout=0.2,
                                                      use_batchnorm=True, name="br"))
        assert (clone.dim, clone.hidden_dim, clone.dropout, clone.use_batchnorm) == (8, 3, 0.2, True)

    def test_functional_model_saves_and_reloads(self, tmp_path):
        inp = keras.Input((5,))
        model = keras.Model(inp, ModalityBranch(dim=4, dropout=0.1, use_batchnorm=True, name="br")(inp))
        model.get_layer("br").batchnorm.moving_mean.assign(np.arange(4, dtype="float32"))
        run_model_saving_test(model, _x(3), tmp_path / "branch.keras")

    def test_one_fit_step(self):
        inp = keras.Input((5,))
        model = keras.Model(inp, ModalityBranch(dim=4)(inp))
        run_fit_step_test(model, _x(4), np.ones((6, 4), "float32"))


class TestBranchOptions:
    def test_depth_stacks_hidden_layers(self):
        """depth 2: g = relu(relu(x W1 + b1) W2 + b2) W3 + b3, checked in numpy; hidden_dim sets both widths."""
        branch = ModalityBranch(dim=4, hidden_dim=6, depth=2)
        x = _x(3)
        g = np.asarray(branch(x))
        (w1, b1), (w2, b2) = ([v.numpy() for v in layer.weights] for layer in (branch.hidden, *branch.deeper))
        w3, b3 = (v.numpy() for v in branch.proj.weights)
        relu = lambda a: np.maximum(a, 0)  # noqa: E731
        np.testing.assert_allclose(g, relu(relu(x @ w1 + b1) @ w2 + b2) @ w3 + b3, atol=1e-5)
        assert [layer.units for layer in branch.deeper] == [6]
        with pytest.raises(ValueError, match="depth must be a positive integer"):
            ModalityBranch(depth=0)

    def test_standardization_is_identity_until_set_then_standardizes(self):
        """z = (x - μ) / σ before the first layer; μ, 1/σ are non-trainable weights that save with the layer."""
        x = _x(4, d=3)
        branch = ModalityBranch(dim=4, standardize=True)
        plain = np.asarray(branch(x))
        np.testing.assert_allclose(plain, np.asarray(branch.proj(branch.hidden(x))), atol=1e-6)
        mean, std = np.array([1.0, -2.0, 0.5]), np.array([2.0, 0.5, 1e-9])
        branch.set_standardization(mean, std)
        z = (x - mean) / np.maximum(std, 1e-6)
        np.testing.assert_allclose(np.asarray(branch(x)), np.asarray(branch.proj(branch.hidden(z.astype("float32")))),
                                   rtol=1e-5, atol=1e-4)
        assert len(branch.non_trainable_weights) == 2 and len(branch.trainable_weights) == 4
        clone = ModalityBranch.from_config(branch.get_config())
        assert clone.standardize and clone.depth == 1
        with pytest.raises(ValueError, match="standardize=True"):
            ModalityBranch(dim=4).set_standardization(mean, std)
