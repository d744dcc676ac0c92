"""The Trainer's recipe options: AdamW for weight decay, train-split standardisation, and a run that never reads test."""

import keras
import numpy as np
import pytest

from cvs_tf.config import ConfigError, RunConfig
from cvs_tf.data.stats import feature_moments
from cvs_tf.data.store import FeatureSet, load_feature_set
from cvs_tf.training.trainer import Trainer, make_optimizer
from tests.helpers import make_toy_featureset, tiny_config


def test_weight_decay_selects_adamw():
    t = RunConfig().train
    assert type(make_optimizer(t)) is keras.optimizers.Adam
    t.weight_decay = 1e-3
    opt = make_optimizer(t)
    assert isinstance(opt, keras.optimizers.AdamW) and opt.weight_decay == pytest.approx(1e-3)


class Guarded(FeatureSet):
    """Records every read of the test split."""

    test_reads: list = []

    def _get(self, modality, split):
        if split == "test":
            self.test_reads.append(modality)
        return super()._get(modality, split)


@pytest.mark.trains
def test_test_split_false_never_reads_test_and_standardize_fits_train(tmp_path):
    fs = load_feature_set(make_toy_featureset(tmp_path / "toy", modalities={"image": 8, "text": 6}))
    guarded = Guarded(fs.path, fs.manifest, fs.arrays)
    cfg = tiny_config(dim=8, attention=False, standardize=True, train={"epochs": 2, "batch_size": 8, "weight_decay": 1e-4})
    result = Trainer(cfg.validate(), tmp_path / "run", featureset=guarded, checkpoint=False, verbose=0,
                     log=lambda m: None, test_split=False).run()
    assert Guarded.test_reads == []
    assert result.metrics["splits"] == ["val"] and result.metrics["test"] is None
    assert set(result.tables) == {"val"} and not list((tmp_path / "run" / "eval").glob("test-*"))
    assert isinstance(result.model.optimizer, keras.optimizers.AdamW)
    for m in ("image", "text"):
        mean, std = feature_moments(fs.x(m, "train"))
        branch = result.model.branches[m]
        np.testing.assert_allclose(branch.feature_mean.numpy(), mean, rtol=1e-6)
        np.testing.assert_allclose(branch.feature_scale.numpy(), 1 / np.maximum(std, 1e-6), rtol=1e-5)


@pytest.mark.trains
def test_test_split_false_needs_a_validation_split(tmp_path):
    fs = load_feature_set(make_toy_featureset(tmp_path / "toy", modalities={"image": 8, "text": 6}))
    arrays = {k: v for k, v in fs.arrays.items()}
    manifest = {**fs.manifest, "modalities": {m: {**spec, "counts": {**spec["counts"], "val": 0}}
                                              for m, spec in fs.manifest["modalities"].items()}}
    for m in fs.modalities:
        x, y = arrays[(m, "val")]
        arrays[(m, "val")] = (x[:0], y[:0])
    empty = FeatureSet(fs.path, manifest, arrays)
    cfg = tiny_config(dim=8, train={"epochs": 1, "early_stopping": "none"})
    with pytest.raises(ConfigError, match="never reads the test split \\(tuning\\) needs them"):
        Trainer(cfg.validate(), tmp_path / "run", featureset=empty, checkpoint=False, verbose=0,
                log=lambda m: None, test_split=False).run()
    assert not (tmp_path / "run").exists()
