"""What every kind of issue #14 (supcon, infonce, dscmr, max_violation) shares: naive-loop values, masks, XLA, a train step."""

import numpy as np
import pytest
import tensorflow as tf

from cvs_tf.losses import get_pair_loss
from cvs_tf.models import CVSModel
from tests.losses.kind_refs import OPTIONS, REFERENCES, random_batch, unit

pytestmark = pytest.mark.trains

KINDS = sorted(REFERENCES)
TERMS = {"supcon": ("intra_{a}", "intra_{b}", "inter"), "infonce": ("{a}_to_{b}", "{b}_to_{a}"),
         "dscmr": ("similarity", "invariance"), "max_violation": ("{a}_to_{b}", "{b}_to_{a}")}


def _masked_batch():
    """Pair 0: anchor 2 of x has no positive in x nor y; pair 1: one class, so no anchor has a negative."""
    yx = np.array([[0, 0, 2], [1, 1, 1]])
    yy = np.array([[0, 1, 1], [1, 1, 1]])
    rng = np.random.default_rng(7)
    return yx, unit(rng.normal(size=(2, 3, 4))), yy, unit(rng.normal(size=(2, 3, 4)))


@pytest.mark.parametrize("kind", KINDS)
def test_registered_with_its_terms(kind):
    loss = get_pair_loss(kind)
    assert loss.terms == TERMS[kind] and loss.total_name == kind


@pytest.mark.parametrize("multi_hot", [False, True], ids=["ids", "multi_hot"])
@pytest.mark.parametrize("kind", KINDS)
def test_equals_the_naive_loop_on_each_stacked_pair(kind, multi_hot):
    for seed in (0, 1):
        yx, ex, yy, ey = random_batch(seed, multi_hot=multi_hot)
        out = get_pair_loss(kind)(yx, ex, yy, ey, OPTIONS)
        for p in range(len(ex)):
            want = REFERENCES[kind](yx[p], ex[p], yy[p], ey[p])
            for term, value in want.items():
                np.testing.assert_allclose(out[term][p], value, rtol=1e-5, atol=1e-6, err_msg=f"{term} pair {p}")


@pytest.mark.parametrize("batch", ["masked", "one_item"])
@pytest.mark.parametrize("kind", KINDS)
def test_masked_anchors_give_finite_values_and_gradients(kind, batch):
    yx, ex, yy, ey = _masked_batch() if batch == "masked" else random_batch(8, b=1)  # one item: nothing else
    ex, ey = tf.Variable(ex), tf.Variable(ey)
    with tf.GradientTape() as tape:
        out = get_pair_loss(kind)(yx, ex, yy, ey, OPTIONS)
        total = tf.reduce_sum(out["total"])
    grads = tape.gradient(total, [ex, ey])
    assert all(np.isfinite(v.numpy()).all() and v.shape == (2,) for v in out.values())
    assert all(np.isfinite(g.numpy()).all() for g in grads)
    assert batch == "one_item" or any(np.abs(g.numpy()).sum() > 0 for g in grads)
    for p in range(len(yx)):
        for term, value in REFERENCES[kind](yx[p], ex.numpy()[p], yy[p], ey.numpy()[p]).items():
            np.testing.assert_allclose(out[term][p], value, rtol=1e-5, atol=1e-6, err_msg=f"{term} pair {p}")


@pytest.mark.parametrize("kind", [k if k == "max_violation" else pytest.param(k, marks=pytest.mark.slow)
                                  for k in KINDS])  # ~1-2 s of XLA compile each: one in the fast lane
def test_xla_compiled_equals_eager(kind):
    yx, ex, yy, ey = random_batch(3, multi_hot=kind == "supcon")
    fn = get_pair_loss(kind)
    xla = tf.function(lambda *a: fn(*a, OPTIONS), jit_compile=True)(yx, ex, yy, ey)
    for term, value in fn(yx, ex, yy, ey, OPTIONS).items():
        np.testing.assert_allclose(xla[term], value, rtol=1e-5, atol=1e-6, err_msg=term)


@pytest.mark.parametrize("kind", ["supcon", "infonce"])
def test_temperature_may_be_a_learnt_tensor(kind):
    yx, ex, yy, ey = random_batch(4)
    log_t = tf.Variable(np.log(OPTIONS["temperature"]), dtype=tf.float32)
    with tf.GradientTape() as tape:
        out = get_pair_loss(kind)(yx, ex, yy, ey, {**OPTIONS, "temperature": tf.exp(log_t)})
    grad = tape.gradient(out["total"], log_t)
    np.testing.assert_allclose(out["total"], get_pair_loss(kind)(yx, ex, yy, ey, OPTIONS)["total"], rtol=1e-5)
    assert np.isfinite(grad.numpy()) and grad.numpy() != 0
    with pytest.raises(ValueError, match="temperature must be > 0, got 0.0"):
        get_pair_loss(kind)(yx, ex, yy, ey, {**OPTIONS, "temperature": 0.0})


def test_supcon_takes_sets_of_two_sizes_the_row_aligned_kinds_refuse_them():
    yx, ex, _, _ = random_batch(5, b=5)
    _, _, yy, ey = random_batch(6, b=4)
    out = get_pair_loss("supcon")(yx, ex, yy, ey, OPTIONS)
    np.testing.assert_allclose(out["inter"][0], REFERENCES["supcon"](yx[0], ex[0], yy[0], ey[0])["inter"], rtol=1e-5)
    for kind in ("infonce", "dscmr", "max_violation"):
        with pytest.raises(ValueError, match=rf"pair loss '{kind}' pairs row i .* got 5 and 4$"):
            get_pair_loss(kind)(yx, ex, yy, ey, OPTIONS)


def _one_step(loss_options):
    """A two-modality CVS model after one eager optimizer step (no tracing: fast), its weights before, its logs."""
    rng = np.random.default_rng(0)
    dims = {"image": 5, "text": 4}
    model = CVSModel(dims, 3, dim=6, loss_options=loss_options)
    model.compile(jit_compile=False)
    x = {m: rng.normal(size=(8, d)).astype("float32") for m, d in dims.items()}
    y = {m: np.arange(8) % 3 for m in dims}
    before = [w.numpy().copy() for w in model.trainable_weights]
    return model, before, model.train_step((x, y))


@pytest.mark.parametrize("kind", KINDS)
def test_the_model_trains_a_step_and_tracks_every_term(kind):
    model, before, logs = _one_step({"kind": kind})
    want = {kind, "loss", "classification", *(f"image__text.{t.format(a='image', b='text')}" for t in TERMS[kind])}
    assert set(logs) == want and all(np.isfinite(logs[n]) for n in want), logs
    assert any(not np.allclose(b, w.numpy()) for b, w in zip(before, model.trainable_weights))


@pytest.mark.parametrize("kind", ["supcon", "infonce"])
def test_the_model_learns_the_temperature_through_the_kind(kind):
    model, _, logs = _one_step({"kind": kind, "learn_temperature": True, "temperature": 0.2})
    log_t = model.temperature_layer.log_temperature.numpy()
    assert np.isfinite(logs["loss"]) and np.isfinite(log_t) and log_t != pytest.approx(np.log(0.2), abs=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_train_cli_takes_the_kind_and_names_its_tensorboard_tags(kind, tmp_path):
    from cvs_tf.cli.train import main
    from tests.helpers import make_toy_featureset, tensorboard_tags

    ds = make_toy_featureset(tmp_path / "toy", modalities={"image": 8, "text": 6}, n_train=24, n_test=8)
    out = tmp_path / "run"
    assert main(["--loss", kind, "--dataset", str(ds), "--out", str(out), "--epochs", "1", "--dim", "8",
                 "--batch-size", "8", "--steps-per-epoch", "2", "--no-jit", "--quiet"]) == 0
    want = {"loss/loss", f"loss/{kind}", *(f"loss/image__text.{t.format(a='image', b='text')}" for t in TERMS[kind])}
    for split in ("train", "validation"):
        assert want <= tensorboard_tags(out, "stage1-image_text", split), split
