"""Tiny tuning settings for the tests, a stand-in training whose validation mAP is a pure function of the config,
a feature set whose test split raises, and a fake clock for --preset auto's budget."""

import math
import types

from cvs_tf.config import RunConfig
from cvs_tf.data.store import FeatureSet
from cvs_tf.tuning import TuneSettings, default_space, override_space
from tests.helpers import make_toy_featureset

TINY_BASE = {"model": {"dim": 8}, "train": {"batch_size": 16, "jit": False, "patience": 5}}
TINY_SPACE = {"dim": {"low": 8, "high": 8}, "hidden_dim": {"low": 8, "high": 16}}


def two_modality_set(tmp_path, name="toy"):
    return make_toy_featureset(tmp_path / name, modalities={"image": 8, "text": 6}, name=name)


def tiny_settings(dataset, *, trials, epochs=1, seed=0) -> TuneSettings:
    return TuneSettings(dataset=str(dataset), trials=trials, epochs=epochs, seed=seed,
                        base=RunConfig.from_dict(TINY_BASE), search=override_space(default_space(), TINY_SPACE))


def _score(cfg: RunConfig) -> float:
    """A deterministic stand-in for validation mAP: best at lr 1e-3, depth 1."""
    return 1.0 / (1.0 + abs(math.log10(cfg.train.lr) + 3.0)) - 0.05 * (cfg.model.depth - 1)


def fake_training(monkeypatch, *, interrupt_at=None, calls=None):
    """Replace Trainer.run by a stand-in (no TensorFlow work); ``interrupt_at``: raise Ctrl-C on that call."""
    from cvs_tf.training.trainer import Trainer, TrainResult

    calls = [] if calls is None else calls

    def run(self, resume=False):
        calls.append(self.run_dir.name)
        if interrupt_at is not None and len(calls) == interrupt_at:
            raise KeyboardInterrupt
        v = _score(self.config)
        test = {"overall_mean": v - 0.01} if self._test_split else None
        metrics = {"k": 50, "data_label": "stand-in", "val": {"overall_mean": v}, "val_all": {"overall_mean": v / 2},
                   "test": test, "test_all": test}
        return TrainResult(metrics=metrics, tables={}, tables_all={}, model=None, run_dir=self.run_dir)

    import keras

    monkeypatch.setattr(Trainer, "run", run)
    monkeypatch.setattr(keras.utils, "clear_session", lambda *a, **k: None)  # nothing was built (saves a gc per trial)
    return calls


class NoTest(FeatureSet):
    """A feature set whose test split raises when read."""

    def _get(self, modality, split):
        if split == "test":
            raise AssertionError(f"the test split of {modality} was read")
        return super()._get(modality, split)


def fake_clock(monkeypatch, per_candidate_s):
    """A fake clock for --preset auto's search: each candidate takes ``per_candidate_s``; nothing else takes time."""
    from cvs_tf.tuning import auto

    now = [0.0]
    monkeypatch.setattr(auto, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    real = auto.run_trial

    def run_trial(*args, **kwargs):
        rec = real(*args, **kwargs)
        now[0] += per_candidate_s
        rec["wall_s"] = per_candidate_s
        return rec

    monkeypatch.setattr(auto, "run_trial", run_trial)
