"""Runs in a fresh process that splits the CPU into 2 logical devices: mirrored-vs-one-device measurements as JSON lines.

``python -m tests.training.distributed_helper exact [CASE ...]``: for each case (a space at a
stage), the same global batch through one device and through ``MirroredStrategy`` over the two
logical CPUs: every loss term on every replica, the gradients summed over the replicas (what Keras
applies), one real ``train_function`` step whose weight change is about minus the gradient (:func:`linear_adam`),
the frozen weights, the per-replica batches against the global batch, and the loss without the
all-gather. ``mixed`` does the same under ``mixed_bfloat16`` and with the XLA mode the Trainer
uses under replicas. ``trainer DIR`` trains the toy set with the Trainer on one device, mirrored,
and mirrored interrupted after epoch 1 then resumed.
"""

from __future__ import annotations

import json
import os
import sys
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

B = 16
CASES = {  # name: (space, stage, model options)
    "cvs": ("cvs", 0, {}),
    "mcvs": ("mcvs", 1, {"stages": [["image", "text"], ["audio"]]}),
    "rvs": ("rvs", 1, {"reference": "image", "stages": [["image", "text"], ["audio"]]}),
}


def linear_adam():
    """Adam whose first step is (almost exactly) minus the gradient: lr = epsilon = 1000 >> |g|, so the
    step's weight change is sensitive to the gradient's scale (plain Adam's first step is lr * sign(g))."""
    return keras.optimizers.Adam(1000.0, epsilon=1000.0)


def _model(fs, space, stage, options, strategy, weights=None, jit=False, policy="float32"):
    cfg = RunConfig()
    cfg.model.space, cfg.model.dim = space, 16
    for k, v in options.items():
        setattr(cfg.model, k, v)
    keras.utils.set_random_seed(0)
    old = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        with strategy.scope():
            model = build_model(cfg.validate(), fs)
            model.set_stage(stage, recompile=False)
            if weights is not None:
                model.set_weights(weights)
            model.compile(optimizer=linear_adam(), jit_compile=effective_jit(jit, strategy))
            model.optimizer.build(model.trainable_variables)  # (as the Trainer does: not lazily inside a replica)
    finally:
        keras.mixed_precision.set_global_policy(old)
    return model


def _needed(model):
    return sorted({m for p in model.active_pairs() for m in p}, key=model.all_modalities.index)


def _replica_run(strategy, model, batch):
    """Per-replica loss terms and the summed gradients (zeros where a gradient is None; ``nones`` says where)."""
    nones = []

    @tf.function
    def run(b):
        def fn(data):
            losses, grads = model.losses_and_gradients(*data)
            nones[:] = [g is None for g in grads]
            return losses, [tf.zeros_like(v) if g is None else g for g, v in zip(grads, model.trainable_variables)]
        return strategy.run(fn, args=(b,))

    losses, grads = run(batch)
    per_replica = {k: [float(v) for v in strategy.experimental_local_results(t)] for k, t in losses.items()}
    summed = [strategy.reduce(tf.distribute.ReduceOp.SUM, g, axis=None).numpy() for g in grads]
    return per_replica, summed, list(nones)


def _max_diff(a, b) -> float:
    return max((float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))) for x, y in zip(a, b)),
               default=0.0)


def _batch_map(strategy, dist_batch, batch) -> bool:
    """Replica r holds rows [r*B/N, (r+1)*B/N) of the global batch, for every tensor."""
    flat_d, flat_g = tf.nest.flatten(dist_batch), tf.nest.flatten(batch)
    return all(np.array_equal(np.concatenate([t.numpy() for t in strategy.experimental_local_results(d)]), g.numpy())
               for d, g in zip(flat_d, flat_g))


def exact(fs, name, policy="float32", jit=False) -> dict:
    """One case (see the module docstring); every difference is a max |Δ| against the one-device value."""
    space, stage, options = CASES[name]
    one, mirrored = make_strategy("default"), make_strategy("mirrored")
    single = _model(fs, space, stage, options, one, policy=policy, jit=jit)
    w0 = [np.array(w) for w in single.get_weights()]
    dist = _model(fs, space, stage, options, mirrored, weights=w0, policy=policy, jit=jit)
    bank = FeatureBank(fs, _needed(single), "train")
    batch = next(iter(feature_dataset(bank, B, seed=7)))
    dist_ds = distributed_dataset(mirrored, lambda shard: feature_dataset(bank, B, seed=7, shard=shard))
    dist_batch = next(iter(dist_ds))
    ref_losses, ref_grads = single.losses_and_gradients(*batch)
    got_losses, got_grads, nones = _replica_run(mirrored, dist, dist_batch)
    out = {"case": name, "policy": policy, "replicas": mirrored.num_replicas_in_sync, "jit": dist.jit_mode,
           "batch_map": _batch_map(mirrored, dist_batch, batch),
           "loss_terms": len(ref_losses), "none_match": nones == [g is None for g in ref_grads],
           "loss_diff": max(abs(v - float(ref_losses[k])) for k, vals in got_losses.items() for v in vals),
           "grad_diff": _max_diff([g for g in ref_grads if g is not None],
                                  [g for g, n in zip(got_grads, nones) if not n]),
           "grad_scale": max(float(np.max(np.abs(g))) for g in ref_grads if g is not None)}
    dist.replica_gather = False
    plain, _, _ = _replica_run(mirrored, dist, dist_batch)
    out["nogather_loss_diff"] = abs(float(np.mean(plain["loss"])) - float(ref_losses["loss"]))
    dist.replica_gather = True
    out.update(_one_step(single, dist, bank, dist_ds, w0))
    return out


def _one_step(single, dist, bank, dist_ds, w0) -> dict:
    """One real train_function step each (:func:`linear_adam`): weights, logged terms, frozen weights untouched."""
    frozen = [i for i, v in enumerate(single.weights) if not v.trainable]
    single.make_train_function()
    dist.make_train_function()
    logs_1 = single.train_function(iter(feature_dataset(bank, B, seed=7)))
    logs_n = dist.train_function(iter(dist_ds))
    w1, wn = single.get_weights(), dist.get_weights()
    return {"step_weight_diff": _max_diff(w1, wn),
            "step_change": _max_diff(w0, w1),
            "step_log_diff": max(abs(float(np.ravel(logs_n[k])[0]) - float(logs_1[k])) for k in logs_1),
            "frozen": len(frozen), "frozen_changed": sum(not np.array_equal(w0[i], wn[i]) for i in frozen)}


def trainer(fs_path: Path, out: Path) -> dict:
    """Trainer runs on the toy set: default, mirrored, mirrored stopped after epoch 1 and resumed."""
    from cvs_tf.training.trainer import Trainer

    def cfg(strategy):
        c = RunConfig()
        c.model.dim, c.model.space, c.model.stages = 16, "mcvs", [["image", "text"], ["audio"]]
        t = c.train
        t.dataset, t.epochs, t.batch_size, t.jit, t.strategy, t.patience = str(fs_path), 3, 8, False, strategy, 1
        t.steps_per_epoch = 3
        return c.validate()

    class Stop(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    runs = {}
    for name, strategy in (("default", "default"), ("mirrored", "mirrored")):
        runs[name] = Trainer(cfg(strategy), out / name, verbose=0, log=lambda m: None).run()
    try:
        Trainer(cfg("mirrored"), out / "resumed", verbose=0, log=lambda m: None, callbacks=[Stop()]).run()
    except KeyboardInterrupt:
        pass
    runs["resumed"] = Trainer(cfg("mirrored"), out / "resumed", verbose=0, log=lambda m: None).run(resume=True)
    hist = {k: json.loads((out / k / "history.json").read_text())["stages"] for k in runs}
    return {"history": hist, "val": {k: r.metrics["val"]["overall_mean"] for k, r in runs.items()},
            "tensorboard": {k: _scalars(out / k / "tensorboard") for k in runs}}


def _scalars(root: Path) -> list[str]:
    """Every ``writer-folder|tag|step`` written under ``root`` (sorted, repeats kept)."""
    got = []
    for path in root.rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            got += [f"{path.parent.relative_to(root)}|{v.tag}|{event.step}" for v in event.summary.value]
    return sorted(got)


def main(argv: list[str]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cvs_tf-dist-"))
    path = make_toy_featureset(tmp / "toy", n_train=48)
    fs = load_feature_set(path)
    if argv[0] == "exact":
        for name in argv[1:] or list(CASES):
            print(json.dumps(exact(fs, name)), flush=True)
    elif argv[0] == "mixed":
        print(json.dumps(exact(fs, "cvs", policy="mixed_bfloat16", jit=True)), flush=True)
    elif argv[0] == "trainer":
        print(json.dumps(trainer(path, Path(argv[1]))), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
