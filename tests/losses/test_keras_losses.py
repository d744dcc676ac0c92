"""Tests for the Keras Loss wrappers: same values as the pure functions, config, registration, fit."""

import keras
import numpy as np
import pytest

from cvs_tf.losses import (
    ClassificationLoss,
    ReconstructionLoss,
    SemiHardTripletLoss,
    classification_loss,
    reconstruction_loss,
    semi_hard_triplet_loss,
)


def test_wrappers_equal_pure_functions():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=10)
    emb = rng.normal(size=(10, 4)).astype("float32")
    logits = rng.normal(size=(10, 3)).astype("float32")
    assert float(SemiHardTripletLoss(margin=0.5)(labels, emb)) == pytest.approx(
        float(semi_hard_triplet_loss(labels, emb, 0.5)), abs=1e-6)
    assert float(ClassificationLoss()(labels, logits)) == pytest.approx(float(classification_loss(labels, logits)), abs=1e-6)
    assert float(ReconstructionLoss()(emb, emb * 0.5)) == pytest.approx(float(reconstruction_loss(emb, emb * 0.5)), abs=1e-6)


@pytest.mark.parametrize("loss", [SemiHardTripletLoss(margin=0.3, name="t"), ClassificationLoss(), ReconstructionLoss()])
def test_config_round_trip_and_registration(loss):
    config = loss.get_config()
    assert type(loss).from_config(config).get_config() == config
    serialized = keras.saving.serialize_keras_object(loss)
    assert serialized["registered_name"] == f"cvs_tf>{type(loss).__name__}"
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is type(loss) and revived.get_config() == config


@pytest.mark.trains
def test_fit_step_and_save_with_triplet_loss(tmp_path):
    """A compiled model with SemiHardTripletLoss trains one step and reloads with its loss."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(16, 6)).astype("float32")
    y = rng.integers(0, 3, size=16)
    inp = keras.Input((6,))
    model = keras.Model(inp, keras.layers.Dense(4)(inp))
    model.compile(optimizer="adam", loss=SemiHardTripletLoss(margin=1.0))
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(reloaded.loss, SemiHardTripletLoss) and reloaded.loss.margin == 1.0
