"""Synthetic stand-ins and compiled models shared by the training benchmarks of one ``python -m bench`` process.

Every figure measured on these is labelled "synthetic stand-in": the features come from
``cvs_tf.data.synthetic`` (XMedia shapes: 5 modalities, dims 4096/3000/29/4096/4700, 20 classes),
not from the real data. Data sets are written once per process into a temporary directory, and
compiled models are cached by their settings, so two benchmarks that need the same compiled
step do not pay for tracing and XLA compilation twice.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import numpy as np

_TMP: Path | None = None
_DATA: dict = {}
_MODELS: dict = {}

#: the quick (smoke) runs train 3 modalities, in M-CVS's XMedia order
QUICK_MODALITIES = ("image", "text", "video")

#: XMedia's published feature dimensions (design.md §7), the full-size setting of the benchmarks.
XMEDIA_DIMS = {"image": 4096, "text": 3000, "audio": 29, "video": 4096, "3d": 4700}


def tmpdir() -> Path:
    """A per-process temporary directory, removed at exit."""
    global _TMP
    if _TMP is None:
        _TMP = Path(tempfile.mkdtemp(prefix="cvs_tf-bench-"))
        atexit.register(shutil.rmtree, _TMP, True)
    return _TMP


def xmedia(scale: float = 0.1):
    """The XMedia stand-in at ``scale`` (loaded ``FeatureSet``), generated once per process."""
    key = ("xmedia", scale)
    if key not in _DATA:
        from cvs_tf.data.store import load_feature_set
        from cvs_tf.data.synthetic import write_synthetic

        path = write_synthetic("xmedia", tmpdir() / f"xmedia-{scale:g}", scale=scale, seed=0)
        _DATA[key] = load_feature_set(path)
    return _DATA[key]


def config(space: str, *, attention: bool = True, dim: int = 512, batch: int = 128,
           stages=None, modalities=None, jit=True):
    """A RunConfig for ``space`` with the thesis defaults and the given overrides."""
    from cvs_tf.config import RunConfig

    cfg = RunConfig()
    cfg.model.space = space
    cfg.model.attention = attention
    cfg.model.dim = dim
    cfg.model.stages = stages
    cfg.model.modalities = modalities
    cfg.train.batch_size = batch
    cfg.train.jit = jit
    return cfg.validate()


class Setup:
    """A compiled model at one stage, its FeatureBank, its tf.data feature pipeline and a constant batch from it."""

    def __init__(self, cfg, fs, stage: int, jit, seed: int = 0):
        import keras

        from cvs_tf.data.pipeline import FeatureBank, feature_dataset, index_dataset
        from cvs_tf.models.factory import build_model

        keras.utils.set_random_seed(seed)
        self.cfg, self.fs, self.stage, self.jit = cfg, fs, stage, jit
        self.model = build_model(cfg, fs)
        self.model.set_stage(stage, recompile=False)
        self.model.compile(optimizer=keras.optimizers.Adam(cfg.train.lr), jit_compile=jit)
        needed = sorted({m for p in self.model.active_pairs() for m in p}, key=self.model.all_modalities.index)
        self.bank = FeatureBank(fs, needed, "train")
        self.batch = cfg.train.batch_size
        self.index_ds = index_dataset(self.bank, self.batch, seed=seed)
        self.feature_ds = feature_dataset(self.bank, self.batch, seed=seed)   # what the Trainer feeds
        self.constant = next(iter(self.feature_ds))      # (x, y) dicts of constant tensors
        self.model.make_train_function()
        self._iterator = None
        self.first_call_s = None      # tracing + compilation + one step, whichever benchmark paid it

    def step_constant(self):
        """One training step on the constant in-memory batch (no tf.data, no gather)."""
        if self.first_call_s is None:
            import time

            t0 = time.perf_counter()
            out = self.model.train_function([self.constant])
            self.first_call_s = time.perf_counter() - t0
            return out
        return self.model.train_function([self.constant])

    def step_pipeline(self):
        """One training step as ``fit`` runs it: the next batch from the tf.data pipeline (index batch,
        rows gathered and prefetched on tf.data's threads)."""
        if self._iterator is None:
            self._iterator = iter(self.feature_ds)
        return self.model.train_function(self._iterator)


def setup(space: str, stage: int, jit, *, fs=None, scale: float = 0.1, **cfg_kw) -> Setup:
    """A cached :class:`Setup` for these settings (built and compiled on first use)."""
    import json

    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")   # retracing notices: every benchmark case is its own tf.function
    fs = fs if fs is not None else xmedia(scale)
    cfg = config(space, jit=jit, **cfg_kw)
    key = (json.dumps(cfg.to_dict(), sort_keys=True, default=str), stage, str(jit), id(fs))
    if key not in _MODELS:
        _MODELS[key] = Setup(cfg, fs, stage, jit)
    return _MODELS[key]


def reduced_dims(dims: dict, factor: int) -> dict:
    """Feature dimensions divided by ``factor`` (at least 8): the quick-mode shapes."""
    return {m: max(8, d // factor) for m, d in dims.items()}


def small_featureset(dims: dict, n_classes: int = 20, n_train: int = 200, seed: int = 0, name: str = "xmedia-small"):
    """A small class-aligned stand-in with the given dims (quick runs and tests), written once per process."""
    key = ("small", tuple(dims.items()), n_classes, n_train, seed)
    if key not in _DATA:
        from cvs_tf.data.store import carve_validation, load_feature_set, save_feature_set

        rng = np.random.default_rng(seed)
        data = {}
        for i, (m, d) in enumerate(dims.items()):
            n = n_train // (1 + i % 3)
            y = np.arange(n) % n_classes
            yt = np.arange(max(n // 4, n_classes)) % n_classes
            centers = rng.normal(size=(n_classes, d)).astype(np.float32)
            data[m] = {"train": (centers[y] + rng.normal(size=(n, d)).astype(np.float32), y),
                       "test": (centers[yt] + rng.normal(size=(len(yt), d)).astype(np.float32), yt)}
        data = carve_validation(data, 0.1, seed, paired=False)
        path = save_feature_set(tmpdir() / f"{name}-{len(_DATA)}", name, data,
                                [f"class{c:02d}" for c in range(n_classes)], label_kind="single",
                                pairing="class", provenance={"synthetic": True, "converter": "bench.standin"},
                                validation={"fraction": 0.1, "seed": seed})
        _DATA[key] = load_feature_set(path)
    return _DATA[key]


def sizes(quick: bool) -> dict:
    """Data and shapes of the training benchmarks: the XMedia stand-in at full dims (batch 128,
    D = 512), or the quick smoke-run shapes (dims / 16, batch 32, D = 64, 3 modalities for CVS)."""
    if quick:
        return {"fs": small_featureset(reduced_dims(XMEDIA_DIMS, 16)), "batch": 32, "dim": 64,
                "extra": {"modalities": list(QUICK_MODALITIES)}}
    return {"fs": xmedia(0.1), "batch": 128, "dim": 512, "extra": {}}
