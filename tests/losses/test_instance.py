"""The instance term (symmetric InfoNCE over true pairs): hand-derived values, temperature, gradients, XLA, the model, the CLI."""

import json
import math

import numpy as np
import pytest
import tensorflow as tf

from cvs_tf.cli.train import main
from cvs_tf.losses import get_pair_loss, instance_infonce
from cvs_tf.models import CVSModel, MCVSModel, RVSModel
from cvs_tf.utils.cli import run_cli
from tests.helpers import make_toy_featureset, tensorboard_tags


def _softplus(v):
    return math.log1p(math.exp(v))


def test_two_items_by_hand():
    """x = [(1, 0), (0, 1)], y = [(1, 0), (0.6, 0.8)], τ = 0.5.

    s = x yᵀ = [[1, 0.6], [0, 0.8]], logits s/τ = [[2, 1.2], [0, 1.6]].
    x → y (rows):    item 0: -log(e² / (e² + e^1.2)) = softplus(-0.8); item 1: -log(e^1.6 / (e⁰ + e^1.6)) = softplus(-1.6)
    y → x (columns): item 0: logits (2, 0), softplus(-2);              item 1: logits (1.2, 1.6), softplus(-0.4)
    loss = ½ (½ (sp(-0.8) + sp(-1.6)) + ½ (sp(-2) + sp(-0.4))) = ¼ (0.371101 + 0.183901 + 0.126928 + 0.513015) = 0.298736
    """
    ex = np.array([[[1.0, 0.0], [0.0, 1.0]]], np.float32)
    ey = np.array([[[1.0, 0.0], [0.6, 0.8]]], np.float32)
    want = 0.25 * (_softplus(-0.8) + _softplus(-1.6) + _softplus(-2.0) + _softplus(-0.4))
    assert want == pytest.approx(0.298736, abs=1e-6)
    out = instance_infonce(ex, ey, 0.5)
    assert out.shape == (1,)
    np.testing.assert_allclose(out.numpy(), [want], rtol=1e-6)
    # symmetric in the two modalities
    np.testing.assert_allclose(instance_infonce(ey, ex, 0.5).numpy(), [want], rtol=1e-6)


def test_three_items_of_one_class_are_negatives_of_each_other():
    """Three items, one class: the class-level infonce kind masks every other item (0 loss); the instance
    term keeps them as negatives. x = y = the standard basis of R³ (s = I), τ = 1: every anchor has
    logits (1, 0, 0) with target 1, so both directions are -log(e / (e + 2)) = log(1 + 2/e) = 0.551445."""
    e = np.eye(3, dtype=np.float32)[None]
    labels = np.zeros((1, 3), np.int64)
    want = math.log(1 + 2 / math.e)
    assert want == pytest.approx(0.551445, abs=1e-6)
    np.testing.assert_allclose(instance_infonce(e, e, 1.0).numpy(), [want], rtol=1e-6)
    masked = get_pair_loss("infonce")(labels, e, labels, e, {"temperature": 1.0})["total"]
    np.testing.assert_allclose(masked.numpy(), [0.0], atol=1e-7)


def test_temperature_behaviour():
    """On a batch whose true pairs are the most similar, the loss falls as τ falls (towards 0) and tends to
    log B as τ grows (uniform softmax)."""
    e = np.eye(4, dtype=np.float32)[None]
    losses = [float(instance_infonce(e, e, t)[0]) for t in (0.05, 0.1, 0.5, 1.0, 1e4)]
    assert all(a < b for a, b in zip(losses, losses[1:])), losses
    assert losses[0] < 1e-6
    assert losses[-1] == pytest.approx(math.log(4), rel=1e-3)


@pytest.mark.parametrize("temperature", [0.01, 0.1, 10.0])
def test_gradients_are_finite_and_nonzero(temperature):
    rng = np.random.default_rng(3)
    unit = lambda a: a / np.linalg.norm(a, axis=-1, keepdims=True)  # noqa: E731
    ex = tf.Variable(unit(rng.normal(size=(2, 3, 4))).astype(np.float32))
    ey = tf.Variable(np.concatenate([ex.numpy()[:1], unit(rng.normal(size=(1, 3, 4)))]).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(instance_infonce(ex, ey, temperature))
    grads = tape.gradient(loss, [ex, ey])
    assert np.isfinite(loss.numpy())
    assert all(np.isfinite(g.numpy()).all() and np.abs(g.numpy()).sum() > 0 for g in grads)


def test_xla_equals_eager_and_sets_of_two_sizes_are_refused():
    rng = np.random.default_rng(4)
    ex, ey = (rng.normal(size=(2, 5, 3)).astype(np.float32) for _ in range(2))
    xla = tf.function(lambda a, b: instance_infonce(a, b, 0.2), jit_compile=True)(ex, ey)
    np.testing.assert_allclose(xla.numpy(), instance_infonce(ex, ey, 0.2).numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match="pair loss 'instance' pairs row i .* got 5 and 4$"):
        instance_infonce(ex, ey[:, :4], 0.2)


@pytest.mark.trains
def test_the_model_adds_the_weighted_term_and_tracks_it_per_pair():
    rng = np.random.default_rng(0)
    dims = {"image": 5, "text": 4, "audio": 3}
    weights = {"instance_weight": 0.7, "instance_temperature": 0.2}
    model = CVSModel(dims, 3, dim=6, loss_options=weights)
    model.compile(jit_compile=False)
    x = {m: rng.normal(size=(6, d)).astype("float32") for m, d in dims.items()}
    y = {m: np.arange(6) % 3 for m in dims}
    labels, logits, pair_emb, _ = model.loss_inputs(x, y)
    out = model.loss_terms(labels, logits, pair_emb)
    pairs = model.active_pairs()
    for a, b in pairs:
        ea, eb = pair_emb[f"{a}__{b}"]
        np.testing.assert_allclose(out[f"{a}__{b}.instance"], instance_infonce(ea[None], eb[None], 0.2)[0], rtol=1e-5)
    np.testing.assert_allclose(out["instance"], np.mean([out[f"{a}__{b}.instance"] for a, b in pairs]), rtol=1e-6)
    np.testing.assert_allclose(out["loss"], out["classification"] + out["triplet"] + 0.7 * out["instance"], rtol=1e-6)
    logs = model.train_step((x, y))
    assert {"instance", *(f"{a}__{b}.instance" for a, b in pairs)} <= set(logs)
    assert not any("instance" in t.name for t in CVSModel(dims, 3, dim=6).metrics)  # off by default


@pytest.mark.parametrize("space", ["mcvs", "rvs"])
@pytest.mark.trains
def test_later_stages_of_multi_stage_spaces_train_the_term_on_their_active_pairs(space):
    rng = np.random.default_rng(1)
    dims = {"image": 5, "text": 4, "audio": 3}
    opts = dict(dim=6, current_stage=1, loss_options={"instance_weight": 1.0})
    if space == "mcvs":
        model = MCVSModel(dims, 3, stages=[["image", "text"], ["audio"]], **opts)
    else:
        model = RVSModel(dims, 3, reference="text", stages=[["text", "image"], ["audio"]], **opts)
    model.compile(jit_compile=False)
    x = {m: rng.normal(size=(6, d)).astype("float32") for m, d in dims.items()}
    y = {m: np.arange(6) % 3 for m in dims}
    logs = model.train_step((x, y))
    want = {"instance", *(f"{a}__{b}.instance" for a, b in model.active_pairs())}
    assert want <= set(logs) and all(np.isfinite(float(logs[n])) and float(logs[n]) > 0 for n in want), logs
    assert not any(n.endswith(".instance") and n not in want for n in logs)


@pytest.mark.trains
def test_train_cli_takes_the_term_and_names_its_tensorboard_tags(tmp_path, capsys):
    ds = make_toy_featureset(tmp_path / "toy", modalities={"image": 8, "text": 6}, n_train=24, n_test=8, paired=True)
    out = tmp_path / "run"
    assert main(["--instance-weight", "0.5", "--instance-temperature", "0.2", "--dataset", str(ds), "--out", str(out),
                 "--epochs", "1", "--dim", "8", "--batch-size", "8", "--steps-per-epoch", "2", "--quiet"]) == 0
    loss = json.loads((out / "config.json").read_text())["loss"]
    assert (loss["instance_weight"], loss["instance_temperature"]) == (0.5, 0.2)
    assert " instance=" in capsys.readouterr().out  # the per-epoch progress line
    want = {"loss/loss", "loss/instance", "loss/image__text.instance"}
    for split in ("train", "validation"):
        assert want <= tensorboard_tags(out, "stage1-image_text", split), split


@pytest.mark.parametrize("argv,needle", [
    (["--instance-weight", "0.5"], "loss.instance_weight 0.5 needs an instance-paired dataset"),
    (["--instance-weight", "-1"], "loss.instance_weight must be >= 0"),
    (["--instance-weight", "nan"], "loss.instance_weight must be a finite number"),
    (["--instance-temperature", "0"], "loss.instance_temperature must be a number > 0"),
])
@pytest.mark.trains
def test_bad_values_and_class_paired_sets_are_refused_in_one_line(tmp_path, capsys, argv, needle):
    ds = make_toy_featureset(tmp_path / "ds")  # paired by class only
    out = tmp_path / "run"
    code = run_cli(main, ["--dataset", str(ds), "--epochs", "1", "--batch-size", "8", "--quiet", *argv,
                                "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error:") and needle in err[0], err
    assert not out.exists()
