"""CVS / M-CVS / RVS models: training lowers the loss, stage freezing is exact, reload reproduces embed()."""

import keras
import numpy as np
import pytest

from cvs_tf.data.pipeline import FeatureBank, index_dataset
from cvs_tf.data.store import load_feature_set
from cvs_tf.models import CVSModel, MCVSModel, RVSModel, build_model
from tests.helpers import make_toy_featureset, tiny_config

pytestmark = pytest.mark.trains

SMALL = {"batch_size": 16}
FIVE = {"image": 16, "text": 12, "audio": 6, "video": 10, "3d": 14}


@pytest.fixture(scope="module")
def five_set(tmp_path_factory):
    return load_feature_set(make_toy_featureset(tmp_path_factory.mktemp("five") / "x", modalities=FIVE))


def _batches(model, fs, n, seed=0):
    needed = sorted({m for p in model.active_pairs() for m in p})
    bank = FeatureBank(fs, needed, "train")
    model.attach_bank(bank)
    return bank, index_dataset(bank, 16, seed=seed, num_steps=n)


def _fit_stage(model, fs, steps=8, epochs=2):
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
    bank, ds = _batches(model, fs, steps * epochs)
    before = model.evaluate(ds.take(steps).map(bank.gather), verbose=0, return_dict=True)["loss"]
    model.fit(ds, epochs=epochs, steps_per_epoch=steps, verbose=0, shuffle=False)
    after = model.evaluate(ds.take(steps).map(bank.gather), verbose=0, return_dict=True)["loss"]
    return before, after


@pytest.mark.parametrize("space,kw", [
    ("cvs", {}), pytest.param("cvs", {"attention": False}, marks=pytest.mark.slow),
    pytest.param("mcvs", {}, marks=pytest.mark.slow), pytest.param("rvs", {"reference": "text"}, marks=pytest.mark.slow),
])  # one space in the fast lane; test_mcvs_freezing_* and test_rvs_freezes_reference_side train the others
def test_each_space_trains_and_loss_goes_down(five_set, space, kw):
    model = build_model(tiny_config(space, train=SMALL, **kw), five_set)
    for k in range(model.num_stages):
        model.set_stage(k, recompile=False)
        before, after = _fit_stage(model, five_set)
        assert np.isfinite(after)
        assert after < before, f"stage {k + 1}: loss {before:.4f} -> {after:.4f}"


def test_cvs_has_one_block_per_pair(five_set):
    model = build_model(tiny_config("cvs", train=SMALL), five_set)
    assert len(model.blocks) == 10  # C(5, 2)
    assert model.parameter_report()["attention_blocks"] == 10
    noatt = build_model(tiny_config("cvs", train=SMALL, attention=False), five_set)
    assert noatt.blocks == {} and noatt.parameter_report()["attention_blocks"] == 0


def _snapshot(layers, trainable_only=False):
    return {id(v): (v.path, np.array(v.numpy(), copy=True)) for layer in layers
            for v in (layer.trainable_weights if trainable_only else layer.weights)}


def test_mcvs_freezing_is_bit_identical_and_new_weights_change(five_set):
    cfg = tiny_config("mcvs", train=SMALL, stages=[["image", "text"], ["video"], ["audio"], ["3d"]])
    model = build_model(cfg, five_set)
    assert isinstance(model, MCVSModel)
    frozen_snapshots = []
    for k in range(model.num_stages):
        model.set_stage(k, recompile=False)
        new_layers = model.stage_components(k)
        start = _snapshot(new_layers)
        for snap in frozen_snapshots:  # frozen earlier: must not be trainable now
            for layer in snap[0]:
                assert not layer.trainable
        _fit_stage(model, five_set, steps=4, epochs=1)
        end = _snapshot(new_layers)
        changed = [not np.array_equal(start[i][1], end[i][1]) for i in start]
        assert all(changed), f"stage {k + 1}: some new weights did not train"
        for layers, snap in frozen_snapshots:
            now = _snapshot(layers)
            for i, (path, value) in snap.items():
                assert np.array_equal(value, now[i][1]), f"stage {k + 1} changed frozen {path}"
        frozen_snapshots.append((new_layers, end))
    # classifier frozen after stage 1; stage k adds k blocks (one per existing modality)
    assert not model.classifier.trainable
    assert [len(p["blocks"]) for p in model.plan] == [1, 2, 3, 4]


@pytest.mark.parametrize("reference", ["image", pytest.param("text", marks=pytest.mark.slow)])
def test_rvs_freezes_reference_side(five_set, reference):
    model = build_model(tiny_config("rvs", train=SMALL, reference=reference), five_set)
    assert isinstance(model, RVSModel)
    assert model.stages[0][0] == reference
    model.set_stage(0, recompile=False)
    _fit_stage(model, five_set, steps=4, epochs=1)
    ref_layers = [model.branches[reference], model.classifier, model.shared_reference]
    snap = _snapshot(ref_layers)
    for k in range(1, model.num_stages):
        model.set_stage(k, recompile=False)
        names = {v.path for v in model.trainable_variables}
        assert not any(reference in n.split("/")[0] for n in names if n.startswith("branch_")), names
        new = model.stage_components(k)
        start = _snapshot(new, trainable_only=True)
        assert start, "stage adds trainable weights"
        _fit_stage(model, five_set, steps=4, epochs=1)
        end = _snapshot(new, trainable_only=True)
        assert all(not np.array_equal(start[i][1], end[i][1]) for i in start)
        now = _snapshot(ref_layers)
        for i, (path, value) in snap.items():
            assert np.array_equal(value, now[i][1]), f"stage {k + 1} changed frozen {path}"
    # every later block shares the reference's w_r / w_ie variables
    blocks = list(model.blocks.values())
    assert all(b.w_ie is blocks[0].w_ie for b in blocks)
    partner = model.stages[0][1]
    assert not model.branches[partner].trainable  # frozen after its stage


@pytest.mark.slow  # fast lane: tests/cli/test_train.py::test_reloaded_stage_model_reproduces_embed, test_import_registers
def test_model_keras_reload_reproduces_embed(five_set, tmp_path):
    for space in ("cvs", "mcvs", "rvs"):
        model = build_model(tiny_config(space, train=SMALL), five_set)
        model.set_stage(model.num_stages - 1, recompile=False)
        _fit_stage(model, five_set, steps=2, epochs=1)
        path = tmp_path / f"{space}.keras"
        model.save(path)
        again = keras.models.load_model(path, compile=False)
        assert type(again) is type(model) and again.current_stage == model.current_stage
        for m in model.modalities:
            x = five_set.x(m, "test")
            np.testing.assert_allclose(again.embed(m, x).numpy(), model.embed(m, x).numpy(), atol=1e-6)
        for key, blk in model.blocks.items():
            for a, b in zip(blk.weights, again.blocks[key].weights):
                np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_config_round_trip(five_set):
    model = build_model(tiny_config("rvs", train=SMALL, reference="text"), five_set)
    clone = RVSModel.from_config(model.get_config())
    assert clone.stages == model.stages and clone.reference == "text"
    assert CVSModel.from_config(build_model(tiny_config("cvs", train=SMALL), five_set).get_config()).num_stages == 1


def test_embed_is_unit_norm_and_rejects_unknown_modality(five_set):
    model = build_model(tiny_config("cvs", train=SMALL), five_set)
    e = model.embed("audio", five_set.x("audio", "test")).numpy()
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="no modality"):
        model.embed("smell", e)


def test_embed_releases_the_mapped_pages_of_each_batch_and_matches_one_call(five_set, monkeypatch):
    """embed() in batches gives the one-batch result and drops every mapped row from the resident set."""
    import cvs_tf.data.pipeline as pipeline

    model = build_model(tiny_config("cvs", train=SMALL), five_set)
    x = five_set.x("image", "train")
    assert isinstance(x, np.memmap) or isinstance(getattr(x, "base", None), np.memmap)
    released = []
    monkeypatch.setattr(pipeline, "release_pages", lambda arr, a, b: released.append((a, min(b, len(arr)))))
    whole = model.embed("image", np.array(x)).numpy()
    released.clear()
    batched = model.embed("image", x, batch_size=7).numpy()
    np.testing.assert_allclose(batched, whole, atol=1e-6)
    covered = sorted(released)
    assert covered[0][0] == 0 and covered[-1][1] == len(x)
    assert all(b == a2 for (_, b), (a2, _) in zip(covered, covered[1:]))
