"""XLA changes nothing but speed: losses and embeddings with XLA (whole step, or loss terms only) match no XLA to 1e-4 over 20 steps."""

import keras
import numpy as np
import pytest

from cvs_tf.data.pipeline import FeatureBank, index_dataset
from cvs_tf.models import build_model
from cvs_tf.models.base import resolve_jit
from tests.helpers import tiny_config

pytestmark = [pytest.mark.trains, pytest.mark.toy(modalities={"image": 12, "text": 10, "audio": 6}, n_train=64)]

STEPS = 20
TOL = 1e-4


def train(fs, space, jit, stage=0, **model_kw):
    """20 steps on the same seeded index batches; per-step logged losses and the final test embeddings."""
    keras.utils.set_random_seed(0)
    model = build_model(tiny_config(space, **model_kw), fs)
    model.set_stage(stage, recompile=False)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=jit)
    needed = sorted({m for p in model.active_pairs() for m in p})
    bank = FeatureBank(fs, needed, "train")
    model.attach_bank(bank)
    model.make_train_function()
    it = iter(index_dataset(bank, 16, seed=3, num_steps=STEPS))
    logs = [{k: float(v) for k, v in model.train_function(it).items()} for _ in range(STEPS)]
    emb = {m: model.embed(m, fs.x(m, "test")).numpy() for m in model.modalities}
    return model, logs, emb


def assert_same(ref, other):
    (_, logs_a, emb_a), (_, logs_b, emb_b) = ref, other
    assert len(logs_a) == len(logs_b) == STEPS
    for step, (a, b) in enumerate(zip(logs_a, logs_b)):
        assert a.keys() == b.keys()
        for k in a:
            assert abs(a[k] - b[k]) <= TOL, f"step {step + 1}: {k} {a[k]} vs {b[k]}"
    for m in emb_a:
        np.testing.assert_allclose(emb_a[m], emb_b[m], atol=TOL, rtol=0)


def test_resolve_jit_modes():
    assert resolve_jit(False) == "off" and resolve_jit("off") == "off"
    assert resolve_jit("full") == "full" and resolve_jit("loss") == "loss"
    assert resolve_jit(True) == "full" and resolve_jit("auto") == "full"
    with pytest.raises(ValueError, match="jit_compile"):
        resolve_jit("sometimes")


@pytest.mark.slow
def test_loss_xla_matches_no_xla_over_20_steps(toy):
    ref = train(toy, "cvs", False, modalities=["image", "text"])
    got = train(toy, "cvs", "loss", modalities=["image", "text"])
    assert ref[0].jit_mode == "off" and got[0].jit_mode == "loss"
    # training moved the weights (the comparison is not between two untrained models)
    assert ref[1][-1]["loss"] < ref[1][0]["loss"]
    assert_same(ref, got)


@pytest.mark.slow
@pytest.mark.parametrize("space,stage,kw", [
    ("cvs", 0, {}), ("mcvs", 1, {"stages": [["image", "text"], ["audio"]]}),
    ("rvs", 1, {"reference": "image", "stages": [["image", "text"], ["audio"]]}),
])
def test_full_and_loss_xla_match_no_xla_over_20_steps(toy, space, stage, kw):
    ref = train(toy, space, False, stage, **kw)
    for mode in ("full", "loss"):
        got = train(toy, space, mode, stage, **kw)
        assert got[0].jit_mode == mode
        assert_same(ref, got)
