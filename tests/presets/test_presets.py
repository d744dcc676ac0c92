"""Tests for cvs_tf.presets: the thesis preset is the library defaults; presets set recipe fields only."""

import json

import pytest

from cvs_tf.config import ConfigError, RunConfig
from cvs_tf.presets import PRESET_FIELDS, apply_preset, load_preset, preset_names, preset_values


def test_thesis_is_the_library_defaults():
    assert load_preset("thesis").to_dict() == RunConfig().validate().to_dict()


def test_every_shipped_preset_loads_and_sets_only_recipe_fields():
    assert "thesis" in preset_names()
    for name in preset_names():
        values = preset_values(name)
        assert set(values) <= set(PRESET_FIELDS)
        load_preset(name)


def test_a_preset_keeps_the_callers_dataset_space_and_seed():
    cfg = RunConfig()
    cfg.model.space, cfg.model.reference, cfg.train.dataset, cfg.train.seed = "rvs", "text", "digits10", 7
    cfg.model.dim = 64
    out = apply_preset(cfg, "thesis")
    assert (out.model.space, out.model.reference, out.train.dataset, out.train.seed) == ("rvs", "text", "digits10", 7)
    assert out.model.dim == 512  # a recipe field: the preset's


def test_unknown_or_overreaching_presets_are_one_config_error(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="unknown preset 'fast' \\(known: .*thesis"):
        load_preset("fast")
    import cvs_tf.presets as presets

    (tmp_path / "bad.json").write_text(json.dumps({"train": {"dataset": "tux12"}}))
    (tmp_path / "typo.json").write_text(json.dumps({"model": {"dim": "big"}}))
    monkeypatch.setattr(presets.resources, "files", lambda _: tmp_path)
    with pytest.raises(ConfigError, match="preset bad: train field\\(s\\) dataset cannot be set by a preset"):
        load_preset("bad")
    with pytest.raises(ConfigError, match="preset typo: config.model.dim: expected an integer"):
        load_preset("typo")
