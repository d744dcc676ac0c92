"""Runs in a fresh process that splits the CPU into 2 logical devices: the cross-batch memory under MirroredStrategy against one device, as JSON lines.

``python -m tests.models.xbm_mirrored_helper``: for the XLA modes off and on, the same global
batches through one device and through ``MirroredStrategy``; after each step the logged loss
terms, and after the last the weights and every queue variable on each replica.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from cvs_tf.config import RunConfig  # noqa: E402
from cvs_tf.data.pipeline import FeatureBank, feature_dataset  # noqa: E402
from cvs_tf.data.store import load_feature_set  # noqa: E402
from cvs_tf.models import build_model  # noqa: E402
from cvs_tf.training.distribute import distributed_dataset, effective_jit, make_strategy  # noqa: E402
from tests.helpers import make_toy_featureset  # noqa: E402

B, STEPS, ROWS, WARMUP = 16, 3, 24, 1


def _model(fs, strategy, jit, weights=None):
    cfg = RunConfig()
    cfg.model.dim, cfg.loss.xbm_size, cfg.loss.xbm_warmup = 16, ROWS, WARMUP
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build_model(cfg.validate(), fs)
        if weights is not None:
            model.set_weights(weights)
        model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=effective_jit(jit, strategy))
        model.optimizer.build(model.trainable_variables)
    return model


def _replicas(strategy, variable) -> list[np.ndarray]:
    """Every replica's copy of a Keras variable (one on one device)."""
    return [np.asarray(t) for t in strategy.experimental_local_results(variable.value)]


def case(fs, jit) -> dict:
    one, mirrored = make_strategy("default"), make_strategy("mirrored")
    single = _model(fs, one, jit)
    dist = _model(fs, mirrored, jit, weights=[np.array(w) for w in single.get_weights()])
    bank = FeatureBank(fs, single.modalities, "train")
    it_1 = iter(feature_dataset(bank, B, seed=7))
    it_n = iter(distributed_dataset(mirrored, lambda shard: feature_dataset(bank, B, seed=7, shard=shard)))
    single.make_train_function()
    dist.make_train_function()
    log_diff = []
    for _ in range(STEPS):
        logs_1, logs_n = single.train_function(it_1), dist.train_function(it_n)
        log_diff.append(max(abs(float(np.ravel(logs_n[k])[0]) - float(logs_1[k])) for k in logs_1))
    queue_diff, replicas_differ = 0.0, 0
    for v1, vn in zip(single.xbm.weights, dist.xbm.weights):
        copies = _replicas(mirrored, vn)
        replicas_differ += sum(not np.array_equal(copies[0], c) for c in copies[1:])
        queue_diff = max(queue_diff, float(np.max(np.abs(np.asarray(v1.numpy(), np.float64) - copies[0]))))
    slot = next(iter(single.xbm.slots.values()))
    return {"jit": dist.jit_mode, "replicas": mirrored.num_replicas_in_sync, "log_diff": log_diff,
            "queue_diff": queue_diff, "queue_vars": len(dist.xbm.weights), "replicas_differ": replicas_differ,
            "weight_diff": max(float(np.max(np.abs(a - b))) for a, b in zip(single.get_weights(), dist.get_weights())),
            "fill": int(slot["fill"].value), "steps": int(slot["steps"].value),
            "labels_seen": sorted({int(v) for v in slot["yx"].value.numpy()})}


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cvs_tf-xbm-"))
    fs = load_feature_set(make_toy_featureset(tmp / "toy", n_train=48))
    for jit in (False, True):
        print(json.dumps(case(fs, jit)), flush=True)


if __name__ == "__main__":
    main()
