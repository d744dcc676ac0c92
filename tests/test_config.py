"""RunConfig: strict typed loading from JSON/dicts (one ConfigError naming the field) and the range checks of validate."""

import json
import math

import pytest

from cvs_tf.config import ConfigError, RunConfig


def _load(tmp_path, data, name="cfg.json"):
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return RunConfig.from_file(p)


def test_defaults_round_trip_through_a_dict():
    cfg = RunConfig()
    again = RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and isinstance(again.loss.gammas, tuple)
    assert again.validate() is again


@pytest.mark.parametrize("data,message", [
    ({"model": {"dim": "abc"}}, "config.model.dim: expected an integer, got 'abc'"),
    ({"train": {"epochs": "x"}}, "config.train.epochs: expected an integer, got 'x'"),
    ({"train": {"epochs": 2.0}}, "config.train.epochs: expected an integer, got 2.0"),
    ({"train": {"epochs": True}}, "config.train.epochs: expected an integer, got True"),
    ({"model": {"attention": "no"}}, "config.model.attention: expected true or false, got 'no'"),
    ({"model": {"attention": 0}}, "config.model.attention: expected true or false, got 0"),
    ({"train": {"lr": "0.1"}}, "config.train.lr: expected a number, got '0.1'"),
    ({"train": {"lr": False}}, "config.train.lr: expected a number, got False"),
    ({"model": {"space": 3}}, "config.model.space: expected a string, got 3"),
    ({"model": []}, "config.model: expected an object, got []"),
    ({"model": None}, "config.model: expected an object, got None"),
    ({"stages": "abc"}, "config: unknown field(s) stages"),
    ({"model": {"stages": "abc"}}, "config.model.stages: expected a list of lists of strings or null, got 'abc'"),
    ({"model": {"stages": ["image", "text"]}}, "config.model.stages[0]: expected a list of strings, got 'image'"),
    ({"model": {"stages": [["image", 1]]}}, "config.model.stages[0][1]: expected a string, got 1"),
    ({"model": {"modalities": "image"}}, "config.model.modalities: expected a list of strings or null, got 'image'"),
    ({"model": {"modalities": [None]}}, "config.model.modalities[0]: expected a string, got None"),
    ({"loss": {"gammas": [1, "x", 2]}}, "config.loss.gammas[1]: expected a number, got 'x'"),
    ({"loss": {"gammas": [1, 2]}}, "config.loss.gammas: expected a list of 3 numbers, got 2 value(s)"),
    ({"loss": {"margins": 1.0}}, "config.loss.margins: expected a list of 3 numbers, got 1.0"),
    ({"loss": {"margins": {"a": 1}}}, "config.loss.margins: expected a list of 3 numbers, got {'a': 1}"),
    ({"train": {"steps_per_epoch": "100"}}, "config.train.steps_per_epoch: expected an integer or null, got '100'"),
    ({"train": {"dataset": 5}}, "config.train.dataset: expected a string or null, got 5"),
    ({"train": {"jit": 1}}, "config.train.jit: expected true or false or a string, got 1"),
    ({"model": {"dim": 512, "colour": "red"}}, "config.model: unknown field(s) colour"),
    ([1, 2], "config: expected an object, got [1, 2]"),
    ("abc", "config: expected an object, got 'abc'"),
    ({1: 2}, "config: unknown field(s) 1"),
])
def test_from_dict_refuses_wrong_types_with_one_config_error(data, message):
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict(data)
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_from_dict_converts_what_json_cannot_say():
    cfg = RunConfig.from_dict({"loss": {"gammas": [1, 0, 2], "alpha": 1}, "train": {"lr": 1, "steps_per_epoch": None},
                               "model": {"stages": [["image", "text"], ["audio"]]}})
    assert cfg.loss.gammas == (1.0, 0.0, 2.0) and isinstance(cfg.loss.gammas[0], float)
    assert isinstance(cfg.train.lr, float) and isinstance(cfg.loss.alpha, float)
    assert cfg.model.stages == [["image", "text"], ["audio"]]
    assert RunConfig.from_dict({"train": {"jit": "loss"}}).validate().train.jit == "loss"


def test_from_file_names_the_file_and_the_field(tmp_path):
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, {"model": {"dim": "abc"}})
    assert str(info.value) == f"{tmp_path / 'cfg.json'}: config.model.dim: expected an integer, got 'abc'"


@pytest.mark.parametrize("content,needle", [
    ("{not json", "not valid JSON"),
    (b"\xff\xfe\x00garbage", "not a UTF-8 JSON text file"),
    ("[" * 100000 + "]" * 100000, "nested too deeply"),
])
def test_unreadable_config_files_are_one_config_error(tmp_path, content, needle):
    p = tmp_path / "bad.json"
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ConfigError, match=needle) as info:
        RunConfig.from_file(p)
    assert str(info.value).startswith(str(p))


def test_a_directory_or_a_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        RunConfig.from_file(tmp_path)
    with pytest.raises(ConfigError, match="no such config file"):
        RunConfig.from_file(tmp_path / "nothing.json")


def _with(section, **kw):
    cfg = RunConfig()
    for k, v in kw.items():
        setattr(getattr(cfg, section), k, v)
    return cfg


@pytest.mark.parametrize("section,field,value,needle", [
    ("train", "lr", math.nan, "train.lr must be a finite number, got nan"),
    ("train", "lr", math.inf, "train.lr must be a finite number, got inf"),
    ("train", "lr", -1e-3, "train.lr must be > 0"),
    ("train", "lr", 0.0, "train.lr must be > 0"),
    ("loss", "margins", (1.0, math.nan, 1.0), "loss.margins[1] must be a finite number, got nan"),
    ("loss", "margins", (1.0, 1.0, -0.5), "loss.margins[2] must be >= 0"),
    ("loss", "gammas", (0.25, -math.inf, 0.5), "loss.gammas[1] must be a finite number"),
    ("loss", "gammas", (0.25, -0.25, 0.5), "loss.gammas[1] must be >= 0"),
    ("loss", "alpha", math.nan, "loss.alpha must be a finite number"),
    ("loss", "beta", -1.0, "loss.beta must be >= 0"),
    ("loss", "reconstruction_weight", -0.1, "loss.reconstruction_weight must be >= 0"),
    ("loss", "reconstruction_weight", math.inf, "loss.reconstruction_weight must be a finite number"),
    ("model", "dropout", 1.0, "model.dropout must be in [0, 1)"),
    ("model", "dropout", -0.1, "model.dropout must be in [0, 1)"),
    ("model", "dropout", math.nan, "model.dropout must be a finite number"),
    ("model", "dim", 0, "model.dim must be >= 1"),
    ("model", "depth", 0, "model.depth must be >= 1"),
    ("model", "hidden_dim", 0, "model.hidden_dim must be >= 1"),
    ("model", "standardize", 1, "config.model.standardize: expected true or false, got 1"),
    ("loss", "label_smoothing", 1.0, "loss.label_smoothing must be in [0, 1)"),
    ("loss", "label_smoothing", -0.1, "loss.label_smoothing must be in [0, 1)"),
    ("loss", "temperature", 0.0, "loss.temperature must be a number > 0"),
    ("loss", "temperature", math.inf, "loss.temperature must be a number > 0"),
    ("loss", "invariance", -1.0, "loss.invariance must be >= 0"),
    ("loss", "vse_margin", math.nan, "loss.vse_margin must be a finite number"),
    ("loss", "kind", "hinge9", "loss.kind must be a registered pair loss"),
    ("train", "weight_decay", -1e-4, "train.weight_decay must be >= 0"),
    ("model", "modalities", [], "model.modalities must not be empty"),
    ("model", "modalities", ["image", ""], "empty modality name"),
    ("model", "stages", [["image", "text"], []], "a modality in every stage"),
    ("model", "stages", [], "at least one stage"),
    ("model", "attention", "no", "config.model.attention: expected true or false, got 'no'"),
    ("model", "space", "quantum", "model.space must be one of cvs, mcvs, rvs"),
    ("train", "steps_per_epoch", 0, "train.steps_per_epoch must be >= 1"),
    ("train", "patience", -1, "train.patience must be >= 1"),
    ("train", "patience", 0, "train.patience must be >= 1"),
    ("train", "batch_size", 1, "train.batch_size must be >= 2"),
    ("train", "epochs", 0, "train.epochs must be >= 1"),
    ("train", "eval_k", 0, "train.eval_k must be >= 1"),
    ("train", "seed", -1, "train.seed must be in [0, 2**32)"),
    ("train", "seed", 2**32, "train.seed must be in [0, 2**32)"),
    ("train", "steps_per_epoch", 10**20, "train.steps_per_epoch must be < 2**31"),
    ("train", "epochs", 2**31, "train.epochs must be < 2**31"),
    ("model", "dim", 2**40, "model.dim must be < 2**31"),
    ("train", "dataset", "", "train.dataset must be a name or a directory"),
    ("train", "early_stopping", "val_acc", "train.early_stopping must be"),
    ("train", "jit", "fast", "train.jit must be true, false or one of full, loss, off"),
    ("train", "epochs", "3", "config.train.epochs: expected an integer, got '3'"),
    ("train", "mixed_precision", None, "config.train.mixed_precision: expected true or false, got None"),
])
def test_validate_rejects_out_of_range_and_non_finite_values(section, field, value, needle):
    with pytest.raises(ConfigError) as info:
        _with(section, **{field: value}).validate()
    assert needle in str(info.value), str(info.value)


def test_a_loss_with_every_weight_zero_is_refused():
    cfg = RunConfig()
    cfg.loss.alpha = cfg.loss.beta = 0.0
    with pytest.raises(ConfigError, match="nothing to train"):
        cfg.validate()
    cfg.loss.reconstruction_weight = 1.0
    cfg.validate()


def test_validate_accepts_the_edges_and_normalises_types():
    cfg = _with("train", batch_size=2, patience=1, eval_k=1, steps_per_epoch=1, seed=2**32 - 1, lr=1)
    cfg.model.dropout = 0.0
    cfg.loss.margins = [0, 0, 0]
    cfg.validate()
    assert cfg.loss.margins == (0.0, 0.0, 0.0) and isinstance(cfg.train.lr, float)


def test_a_non_dataclass_section_is_refused():
    cfg = RunConfig()
    cfg.model = {"dim": 3}
    with pytest.raises(ConfigError, match="config.model: expected a ModelConfig"):
        cfg.validate()


@pytest.mark.parametrize("data,needle", [
    ({"train": {"lr": float("nan")}}, "train.lr must be a finite number"),
    ({"model": {"attention": "no"}}, "expected true or false"),
    ({"train": {"patience": -1}}, "train.patience must be >= 1"),
])
def test_config_file_values_are_checked_before_training(tmp_path, data, needle):
    """JSON's NaN literal parses; validate refuses it (the CLI validates every config up front)."""
    with pytest.raises(ConfigError, match=needle):
        _load(tmp_path, json.dumps(data)).validate()


def test_typed_value_serves_other_loaders():
    """The checker behind from_dict, public for loaders of other dataclasses (e.g. experiment specs)."""
    import dataclasses

    from cvs_tf.config import typed_value

    assert typed_value(dict[str, int], {"a": 1}, "x") == {"a": 1}
    with pytest.raises(ConfigError, match=r"^x.a: expected an integer, got 'b'$"):
        typed_value(dict[str, int], {"a": "b"}, "x")
    with pytest.raises(ConfigError, match=r"^x: expected an object, got \[\]$"):
        typed_value(dict, [], "x")
    assert typed_value(tuple[int, ...], [1, 2, 3], "x") == (1, 2, 3)

    @dataclasses.dataclass
    class Needs:
        name: str
        k: int = 1

    assert typed_value(Needs, {"name": "a"}, "x") == Needs("a")
    with pytest.raises(ConfigError, match=r"^x: missing field\(s\) name$"):
        typed_value(Needs, {"k": 2}, "x")
