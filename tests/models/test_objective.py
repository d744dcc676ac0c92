"""The model's Objective: the active pairs stacked into the pair-loss kind, terms named after it; loss options in the config."""

import numpy as np
import pytest

from cvs_tf.losses import pair_triplet_loss
from cvs_tf.models import CVSModel, MCVSModel

DIMS = {"image": 5, "text": 4, "audio": 3}


def _batch(multi=False, n=12, seed=0):
    rng = np.random.default_rng(seed)
    x = {m: rng.normal(size=(n, d)).astype("float32") for m, d in DIMS.items()}
    ids = {m: rng.integers(0, 3, size=n) for m in DIMS}
    y = {m: (np.eye(3, dtype="float32")[v] if multi else v.astype("int32")) for m, v in ids.items()}
    return x, y


def test_default_kind_keeps_todays_tracker_names():
    model = MCVSModel(DIMS, 3, dim=6, stages=[["image", "text"], ["audio"]])
    assert model._tracker_names == ["loss", "classification", "triplet",
                                    "image__text.intra_image", "image__text.intra_text", "image__text.inter"]
    model.set_stage(1, recompile=False)
    assert model._tracker_names == ["loss", "classification", "triplet",
                                    "image__audio.intra_image", "image__audio.intra_audio", "image__audio.inter",
                                    "text__audio.intra_text", "text__audio.intra_audio", "text__audio.inter"]


@pytest.mark.parametrize("multi", [False, True])
def test_stacked_terms_equal_the_single_pair_loss_of_each_pair(multi):
    weights = {"alpha": 0.7, "beta": 1.3, "gammas": (0.2, 0.3, 0.5), "margins": (1.0, 0.6, 1.4), "symmetric_inter": True}
    model = CVSModel(DIMS, 3, dim=6, loss_options=weights, multi_label=multi)
    labels, logits, pair_emb, _ = model.loss_inputs(*_batch(multi))
    out = model.loss_terms(labels, logits, pair_emb)
    totals = []
    for a, b in model.active_pairs():
        k = f"{a}__{b}"
        want = pair_triplet_loss(labels[a], pair_emb[k][0], labels[b], pair_emb[k][1], gammas=weights["gammas"],
                                 margins=weights["margins"], symmetric=True)
        got = {"intra_x": out[f"{k}.intra_{a}"], "intra_y": out[f"{k}.intra_{b}"], "inter": out[f"{k}.inter"]}
        for t, v in got.items():
            np.testing.assert_allclose(v, want[t], rtol=1e-5, atol=1e-6, err_msg=f"{k}.{t}")
        totals.append(float(want["total"]))
    assert float(out["triplet"]) == pytest.approx(np.mean(totals), rel=1e-5)
    assert float(out["loss"]) == pytest.approx(0.7 * float(out["classification"]) + 1.3 * np.mean(totals), rel=1e-5)


def test_an_unregistered_kind_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"^unknown pair loss 'nope' \(known: .*semihard_triplet.*\)") as err:
        CVSModel(DIMS, 3, dim=6, loss_options={"kind": "nope"})
    assert "\n" not in str(err.value)


def test_kind_round_trips_through_get_config_and_defaults_when_missing():
    model = CVSModel(DIMS, 3, dim=6)
    config = model.get_config()
    assert config["loss_options"]["kind"] == "semihard_triplet" and "loss_weights" not in config
    del config["loss_options"]["kind"]  # a model saved before loss.kind existed
    revived = CVSModel.from_config(config)
    assert revived.loss_options["kind"] == "semihard_triplet" and revived._tracker_names == model._tracker_names


def test_a_config_saved_with_the_old_loss_weights_key_loads_its_options():
    """Files saved before the rename store the loss options under ``loss_weights``."""
    config = CVSModel(DIMS, 3, dim=6).get_config()
    config["loss_weights"] = {**config.pop("loss_options"), "kind": "supcon", "beta": 2.5}
    revived = CVSModel.from_config(config)
    assert revived.loss_options["beta"] == 2.5 and revived.objective.kind.name == "supcon"
    assert revived.get_config()["loss_options"]["beta"] == 2.5 and "loss_weights" not in revived.get_config()
