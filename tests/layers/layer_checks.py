"""Shared layer checks in the keras-hub TestCase style: config round-trip, `.keras` save/reload, one fit step."""

import keras
import numpy as np


def numpy_softmax(e):
    """Softmax over the last axis in float64."""
    e = np.asarray(e, dtype=np.float64)
    z = np.exp(e - e.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def as_np(x):
    """A variable or tensor as a float64 numpy array (None stays None)."""
    return None if x is None else np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


def pair_inputs(seed=0, batch=5, dim=8):
    """Two seeded (batch, dim) float32 arrays, the inputs of an attention block."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(batch, dim)).astype("float32"),
            rng.normal(size=(batch, dim)).astype("float32"))


def assert_pairwise_distinct(variables):
    """No two of the variables hold (nearly) the same values."""
    values = [np.asarray(v.numpy()) for v in variables]
    for i in range(len(values)):
        for j in range(i + 1, len(values)):
            assert not np.allclose(values[i], values[j]), f"{variables[i].path} == {variables[j].path}"


def param_count(weights):
    """Total number of scalars in a list of variables."""
    return int(sum(np.prod(w.shape) for w in weights))


def run_serialization_test(layer):
    """get_config -> from_config -> get_config is the identity, directly and through Keras' serializer."""
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is type(layer)
    assert revived.get_config() == config
    return clone


def run_model_saving_test(model, inputs, path):
    """Saves ``model`` to ``path`` (.keras), reloads it without custom_objects, outputs equal to 1e-6."""
    before = model.predict(inputs, verbose=0)
    model.save(path)
    reloaded = keras.saving.load_model(path)
    after = reloaded.predict(inputs, verbose=0)
    before_flat = before if isinstance(before, (list, tuple)) else [before]
    after_flat = after if isinstance(after, (list, tuple)) else [after]
    assert len(before_flat) == len(after_flat)
    for b, a in zip(before_flat, after_flat):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-6)
    return reloaded


def run_fit_step_test(model, inputs, targets):
    """One Adam step with MSE runs, gives a finite loss, and changes every trainable variable."""
    before = [np.array(v.numpy()) for v in model.trainable_weights]
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    n = len(keras.tree.flatten(inputs)[0])
    history = model.fit(inputs, targets, batch_size=n, epochs=1, verbose=0)  # exactly one step
    assert np.isfinite(history.history["loss"][0])
    for b, v in zip(before, model.trainable_weights):
        assert not np.array_equal(b, v.numpy()), f"{v.path} did not change after a fit step"
