"""A new pair loss is one file: a toy kind defined and registered here trains through ``--config`` with ``loss.kind``.

Nothing under ``cvs_tf/`` knows this kind; its term names must come back as TensorBoard tags.
"""

import json

import numpy as np
import pytest
import tensorflow as tf

from cvs_tf.cli.train import main
from cvs_tf.losses import register_pair_loss
from cvs_tf.models import CVSModel
from tests.helpers import make_toy_featureset, tensorboard_tags

TOY = "toy_cosine_hinge"


@register_pair_loss(TOY, terms=("pull", "push_{b}"), total_name="cosine_hinge")
def toy_cosine_hinge(yx, ex, yy, ey, options):
    """Hinge on cosine similarity for P stacked pairs of (P, B) class ids and (P, B, D) unit embeddings.

    ``s_ij = <x_i, y_j>``; ``pull`` = mean over same-class (i, j) of ``max(0, m - s_ij)``, ``push`` = mean
    over different-class (i, j) of ``max(0, s_ij)``, with ``m = options["margins"][2]``; ``total = pull + push``.
    """
    sim = tf.matmul(ex, ey, transpose_b=True)
    same = tf.cast(tf.equal(yx[..., :, None], tf.cast(yy, yx.dtype)[..., None, :]), sim.dtype)
    margin = tf.cast(options["margins"][2], sim.dtype)
    pull = tf.math.divide_no_nan(tf.reduce_sum(same * tf.nn.relu(margin - sim), [-2, -1]),
                                 tf.reduce_sum(same, [-2, -1]))
    push = tf.math.divide_no_nan(tf.reduce_sum((1 - same) * tf.nn.relu(sim), [-2, -1]),
                                 tf.reduce_sum(1 - same, [-2, -1]))
    return {"pull": pull, "push_{b}": push, "total": pull + push}


@pytest.mark.trains
def test_toy_pair_loss_trains_through_the_cli_and_names_its_tensorboard_tags(tmp_path):
    ds = make_toy_featureset(tmp_path / "toy", modalities={"image": 8, "text": 6, "audio": 5}, n_train=24, n_test=8)
    cfg = tmp_path / "toy.json"
    cfg.write_text(json.dumps({"model": {"dim": 8}, "loss": {"kind": TOY}, "train": {"early_stopping": "none"}}))
    out = tmp_path / "run"
    assert main(["--config", str(cfg), "--dataset", str(ds), "--out", str(out), "--epochs", "1",
                 "--batch-size", "8", "--steps-per-epoch", "2", "--no-jit", "--quiet"]) == 0
    assert json.loads((out / "config.json").read_text())["loss"]["kind"] == TOY
    pairs = [("image", "text"), ("image", "audio"), ("text", "audio")]
    want = {"loss/loss", "loss/classification", "loss/cosine_hinge"}
    want |= {f"loss/{a}__{b}.{t}" for a, b in pairs for t in ("pull", f"push_{b}")}
    for split in ("train", "validation"):
        tags = tensorboard_tags(out, "stage1-image_text_audio", split)
        assert want <= tags, (split, sorted(tags))
        assert not any("triplet" in t or "intra" in t or ".inter" in t for t in tags), sorted(tags)


def test_toy_pair_loss_is_the_same_under_xla():
    """The model's XLA-compiled loss terms (``jit_compile="loss"``) equal the eager ones for the toy kind."""
    rng = np.random.default_rng(0)
    dims = {"image": 5, "text": 4, "audio": 3}
    model = CVSModel(dims, 3, dim=6, loss_options={"kind": TOY})
    model.compile(jit_compile="loss")
    x = {m: rng.normal(size=(10, d)).astype("float32") for m, d in dims.items()}
    y = {m: rng.integers(0, 3, size=10).astype("int32") for m in dims}
    labels, logits, pair_emb, _ = model.loss_inputs(x, y)
    eager = model.loss_terms(labels, logits, pair_emb)
    xla = model._xla_loss_terms(labels, logits, pair_emb)
    assert set(eager) == set(xla) == {"loss", "classification", "cosine_hinge", *(
        f"{a}__{b}.{t}" for a, b in model.active_pairs() for t in ("pull", f"push_{b}"))}
    for k in eager:
        np.testing.assert_allclose(xla[k], eager[k], rtol=1e-5, atol=1e-6, err_msg=k)
    assert float(eager["loss"]) == pytest.approx(float(eager["classification"] + eager["cosine_hinge"]), rel=1e-6)
