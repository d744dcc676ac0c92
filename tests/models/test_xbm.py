"""The cross-batch memory: what its queue holds (rows, labels, wrap-around, warm-up), no gradient into it, the model's step, save/load."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import cvs_tf
from cvs_tf.config import RunConfig
from cvs_tf.models import build_model
from cvs_tf.models.xbm import CrossBatchMemory

pytestmark = pytest.mark.toy(modalities={"image": 10, "text": 6}, paired=True)


def _memory(size=5, warmup=0, classes=0):
    layer = CrossBatchMemory(size, warmup, ["a__b"], dim=2, classes=classes)
    layer.build()
    return layer


def _rows(start, n):
    """n rows numbered from ``start``: embeddings (n, 2) ``[k, -k]`` and labels ``k`` (their number)."""
    k = np.arange(start, start + n)
    return k.astype(np.int32), np.stack([k, -k], 1).astype(np.float32)


def _enqueue(layer, start, n):
    y, e = _rows(start, n)
    layer.enqueue("a__b", y, e, y + 100, e + 100)


def test_the_queue_keeps_the_last_rows_in_ring_order_with_their_labels():
    layer = _memory(size=5)
    _enqueue(layer, 0, 2)
    _enqueue(layer, 2, 2)
    s = layer.slots["a__b"]
    assert int(s["fill"].value) == 4 and int(s["ptr"].value) == 4 and int(s["steps"].value) == 2
    _enqueue(layer, 4, 3)   # rows 4, 5, 6: 5 and 6 wrap around over 0 and 1
    assert int(s["fill"].value) == 5 and int(s["ptr"].value) == 2 and int(s["steps"].value) == 3
    np.testing.assert_array_equal(s["yx"].value.numpy(), [5, 6, 2, 3, 4])
    np.testing.assert_array_equal(s["yy"].value.numpy(), [105, 106, 102, 103, 104])
    np.testing.assert_array_equal(s["ex"].value.numpy()[:, 0], [5, 6, 2, 3, 4])
    np.testing.assert_array_equal(s["ey"].value.numpy()[:, 1], [95, 94, 98, 97, 96])


def test_a_batch_larger_than_the_queue_leaves_its_last_rows():
    layer = _memory(size=3)
    _enqueue(layer, 0, 1)
    _enqueue(layer, 10, 4)   # rows 10..13 at ptr 1: 11, 12, 13 land on 1, 2, 0
    s = layer.slots["a__b"]
    np.testing.assert_array_equal(s["yx"].value.numpy(), [13, 11, 12])
    assert int(s["ptr"].value) == 1 and int(s["fill"].value) == 3


def test_multi_hot_labels_are_kept_as_rows():
    layer = _memory(size=4, classes=3)
    e = np.eye(2, dtype=np.float32)
    y = np.array([[1, 0, 1], [0, 1, 0]], np.float32)
    layer.enqueue("a__b", y, e, y, e)
    np.testing.assert_array_equal(layer.read(["a__b"])["a__b"].yx.numpy()[:2], y)


def test_warm_up_then_only_written_rows_are_valid():
    layer = _memory(size=5, warmup=2)
    valid = lambda: layer.read(["a__b"])["a__b"].valid.numpy().tolist()  # noqa: E731
    assert valid() == [False] * 5
    _enqueue(layer, 0, 2)
    assert valid() == [False] * 5            # 1 step seen < warm-up 2
    _enqueue(layer, 2, 1)
    assert valid() == [True, True, True, False, False]


def test_no_gradient_flows_into_the_queue():
    layer = _memory(size=4)
    e = tf.Variable(np.ones((2, 2), np.float32))
    with tf.GradientTape(persistent=True) as tape:
        layer.enqueue("a__b", [0, 1], e * 2.0, [0, 1], e * 3.0)
        mem = layer.read(["a__b"])["a__b"]
        tape.watch(layer.slots["a__b"]["ex"].value)
        total = tf.reduce_sum(mem.ex) + tf.reduce_sum(mem.ey)
    assert tape.gradient(total, e) is None
    assert all(not v.trainable for v in layer.weights)


def _model(fs, **loss):
    cfg = RunConfig()
    cfg.model.dim = 8
    cfg.loss.xbm_size, cfg.loss.xbm_warmup = loss.get("size", 12), loss.get("warmup", 0)
    if "kind" in loss:
        cfg.loss.kind = loss["kind"]
    keras.utils.set_random_seed(0)
    return build_model(cfg.validate(), fs)


def _batch(fs, model, rows, offset=0):
    x = {m: tf.constant(fs.x(m, "train")[offset:offset + rows], tf.float32) for m in model.modalities}
    y = {m: tf.constant(fs.y(m, "train")[offset:offset + rows].astype(np.int32)) for m in model.modalities}
    return x, y


def test_the_model_step_mines_the_previous_batch_then_enqueues_its_own(toy):
    model = _model(toy, size=12)
    (pair,) = model.active_pairs()
    key = "__".join(pair)
    x1, y1 = _batch(toy, model, 6)
    out1 = model.compute_losses(x1, y1, training=True)
    labels, logits, pair_emb, _ = model.loss_inputs(x1, y1)
    np.testing.assert_allclose(float(out1["loss"]), float(model.loss_terms(labels, logits, pair_emb)["loss"]),
                               atol=1e-6)  # the memory was empty
    s = model.xbm.slots[key]
    np.testing.assert_array_equal(s["yx"].value.numpy()[:6], y1[pair[0]].numpy())
    np.testing.assert_allclose(s["ex"].value.numpy()[:6], pair_emb[key][0].numpy(), atol=1e-6)
    np.testing.assert_allclose(s["ey"].value.numpy()[:6], pair_emb[key][1].numpy(), atol=1e-6)
    x2, y2 = _batch(toy, model, 6, offset=6)
    labels, logits, pair_emb, _ = model.loss_inputs(x2, y2)
    with_memory = model.loss_terms(labels, logits, pair_emb, model.xbm.read([key]))
    out2 = model.compute_losses(x2, y2, training=True)
    np.testing.assert_allclose(float(out2["loss"]), float(with_memory["loss"]), atol=1e-6)
    assert abs(float(out2["triplet"]) - float(model.loss_terms(labels, logits, pair_emb)["triplet"])) > 1e-4
    assert int(s["fill"].value) == 12 and int(s["steps"].value) == 2
    model.compute_losses(x2, y2, training=False)   # validation neither reads nor writes the memory
    assert int(s["steps"].value) == 2


def test_the_memory_is_off_by_default(toy):
    cfg = RunConfig()
    cfg.model.dim = 8
    model = build_model(cfg.validate(), toy)
    assert model.xbm is None and model.objective.memory_rows == 0


def test_a_keras_round_trip_keeps_the_memory_and_its_options(toy, tmp_path):
    model = _model(toy, size=10, warmup=3, kind="supcon")
    x, y = _batch(toy, model, 8)
    model.compute_losses(x, y, training=True)
    path = tmp_path / "m.keras"
    model.save(path)
    back = cvs_tf.load_model(path)
    assert back.loss_options["xbm_size"] == 10 and back.loss_options["xbm_warmup"] == 3
    assert back.xbm is not None and back.xbm.warmup == 3
    for (k, slot), (k2, slot2) in zip(model.xbm.slots.items(), back.xbm.slots.items()):
        assert k == k2
        for name in slot:
            np.testing.assert_array_equal(slot[name].value.numpy(), slot2[name].value.numpy())
    cfg = json.loads(json.dumps(back.get_config()))
    assert cfg["loss_options"]["xbm_size"] == 10


@pytest.mark.slow
@pytest.mark.trains
def test_the_xla_step_trains_with_the_memory(toy):
    model = _model(toy, size=16, warmup=1)
    model.compile(optimizer="adam", jit_compile=True)
    x, y = _batch(toy, model, 8)
    ds = tf.data.Dataset.from_tensors((x, y)).repeat(3)
    model.fit(ds, epochs=1, verbose=0)
    s = next(iter(model.xbm.slots.values()))
    assert int(s["steps"].value) == 3 and int(s["fill"].value) == 16 and int(s["ptr"].value) == 8
    assert np.isfinite(model.get_metrics_result()["loss"])
