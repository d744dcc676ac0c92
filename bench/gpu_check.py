"""Device check for a machine with GPUs: the train step, the mirrored step and the export, each as a fraction of its matmul limit.

``python -m bench.gpu_check [--quick]`` on whatever GPUs TensorFlow sees (it is not part of
``python -m bench``, which runs where no GPU is):

* **train step**: CVS+attention on the XMedia-shaped synthetic stand-in (batch 128, D = 512),
  default XLA mode, one device (GPU:0), Keras' compiled train function on a constant batch
  already on the GPU; limit = the step's matrix products alone as plain ``tf.matmul``
  (:func:`bench.flops.step_products`, without and with XLA, the faster), as in bench/train_step.py;
* **mirrored step**: the same model under ``MirroredStrategy`` over every GPU, fed by the real
  sharded tf.data pipeline (each replica its B/N rows, embeddings all-gathered before the mining;
  XLA mode ``loss``); limit = N × the one-GPU limit, FLOPs those of one device's step on the
  global batch;
* **export**: the image encoder exported with ``cvs_tf.serving.export_model`` and served from the
  loaded SavedModel on 65,536 rows; limit = the branch's forward products alone.

fraction = limit time / measured time (≤ 1; higher is better). Without a GPU it prints one line
saying so and exits 0. Figures are for the machine it runs on: nothing is written to the docs.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

import cvs_tf  # noqa: F401  (first: under `python -m bench.gpu_check` it quiets TensorFlow's native start-up lines)
from bench.common import interleaved, matmul_skeleton, stats, total_flops

SERVE_ROWS = 65536


def _limit(products, rounds: int) -> float:
    """Seconds of the faster of the plain-matmul skeletons (no XLA / XLA) of ``products``."""
    cases = {jit: matmul_skeleton(products, jit) for jit in (False, True)}
    times, _ = interleaved({str(j): f for j, f in cases.items()}, rounds, 3)
    return min(stats(t)["median"] for t in times.values())


def _timed(fn, rounds: int) -> float:
    times, _ = interleaved({"x": fn}, rounds, 3)
    return stats(times["x"])["median"]


def train_step(st: dict, rounds: int) -> dict:
    """One-device train step (GPU:0) on a constant batch on the GPU."""
    import tensorflow as tf

    from bench.flops import step_products
    from bench.standin import setup

    s = setup("cvs", 0, True, fs=st["fs"], batch=st["batch"], dim=st["dim"], **st["extra"])
    with tf.device("/GPU:0"):
        batch = tf.nest.map_structure(tf.identity, s.constant)
    s.model.make_train_function()
    step = _timed(lambda: s.model.train_function([batch]), rounds)
    products = step_products(s.model, st["batch"])
    return {"case": "train step, 1 GPU", "jit": s.model.jit_mode, "step_s": step,
            "flops": total_flops(products), "limit_s": _limit(products, rounds), "products": products}


def mirrored_step(st: dict, rounds: int, one_gpu: dict) -> dict:
    """The step under MirroredStrategy over every GPU, fed by the sharded feature pipeline."""
    import keras

    from bench.standin import config
    from cvs_tf.data.pipeline import FeatureBank, feature_dataset
    from cvs_tf.models.factory import build_model
    from cvs_tf.training.distribute import distributed_dataset, effective_jit, make_strategy

    strategy = make_strategy("mirrored")
    n = strategy.num_replicas_in_sync
    cfg = config("cvs", dim=st["dim"], batch=st["batch"], modalities=st["extra"].get("modalities"))
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build_model(cfg, st["fs"])
        model.compile(optimizer=keras.optimizers.Adam(cfg.train.lr), jit_compile=effective_jit(True, strategy))
        model.optimizer.build(model.trainable_variables)
    needed = sorted({m for p in model.active_pairs() for m in p}, key=model.all_modalities.index)
    bank = FeatureBank(st["fs"], needed, "train")
    it = iter(distributed_dataset(strategy, lambda shard: feature_dataset(bank, st["batch"], seed=0, shard=shard)))
    model.make_train_function()
    step = _timed(lambda: model.train_function(it), rounds)
    return {"case": f"mirrored step, {n} GPU{'s' if n > 1 else ''}", "jit": model.jit_mode, "step_s": step,
            "flops": one_gpu["flops"], "limit_s": one_gpu["limit_s"] / n}


def export(st: dict, rounds: int) -> dict:
    """The exported image encoder (SavedModel) served on the GPU; its equality with ``embed``."""
    import tensorflow as tf

    from bench.flops import forward_products
    from bench.standin import setup
    from cvs_tf.serving import export_model

    s = setup("cvs", 0, True, fs=st["fs"], batch=st["batch"], dim=st["dim"], **st["extra"])
    m = s.model.modalities[0]
    x = np.random.default_rng(0).standard_normal((SERVE_ROWS, s.model.modality_dims[m])).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        export_model(s.model, Path(tmp) / "exp")
        served = tf.saved_model.load(str(Path(tmp) / "exp" / m))
        with tf.device("/GPU:0"):
            xt = tf.identity(tf.constant(x))
        diff = float(np.max(np.abs(served.serve(xt).numpy()[:1024] - s.model.embed(m, x[:1024]).numpy())))
        step = _timed(lambda: served.serve(xt), rounds)
    products = forward_products(s.model, SERVE_ROWS, [m])
    return {"case": f"export: served {m} encoder, {SERVE_ROWS:,} rows", "jit": "SavedModel", "step_s": step,
            "flops": total_flops(products), "limit_s": _limit(products, rounds), "max_abs_diff": diff}


def line(r: dict) -> str:
    frac = r["limit_s"] / r["step_s"]
    extra = f", max |served - embed| {r['max_abs_diff']:.1e}" if "max_abs_diff" in r else ""
    return (f"{r['case']:<40} XLA {r['jit']:<10} {r['step_s'] * 1e3:8.2f} ms  {r['flops'] / r['step_s'] / 1e12:7.2f} "
            f"TFLOP/s  limit {r['flops'] / r['limit_s'] / 1e12:7.2f} TFLOP/s  fraction {frac:5.0%}{extra}")


def parse_args(argv: list[str] | None = None):
    from cvs_tf.utils.cli import ArgumentParser

    p = ArgumentParser(prog="python -m bench.gpu_check", description=(
        "The train step, the mirrored step over every GPU and the served export, as fractions of their "
        "matmul limits (one line and exit 0 without a GPU; nothing is written to the docs)."))
    p.add_argument("--quick", action="store_true", help="small sizes, 2 rounds: a smoke run")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        print("gpu_check: no GPU visible to TensorFlow; nothing to check (run it on a machine with an accelerator)")
        return 0
    from bench.common import header
    from bench.standin import sizes

    quick = args.quick
    st, rounds = sizes(quick), 2 if quick else 6
    print(header("gpu_check", quick, "per row"), flush=True)
    one = train_step(st, rounds)
    for r in (one, mirrored_step(st, rounds, one), export(st, rounds)):
        print(line(r), flush=True)
    return 0


if __name__ == "__main__":
    from cvs_tf.utils.cli import run_cli

    sys.exit(run_cli(main))
