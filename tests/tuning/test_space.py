"""The search space as data: conditional parameters, overrides, and one-line refusals of a malformed space."""

import pytest
from optuna.trial import FixedTrial

from cvs_tf.config import ConfigError, RunConfig
from cvs_tf.losses import pair_loss_names
from cvs_tf.tuning import DEFAULT_LOSS_KINDS, default_space, override_space
from cvs_tf.tuning.space import apply_values


def test_default_space_uses_the_registered_default_kinds_and_real_fields():
    space = default_space().check()
    assert space.loss_kinds == [k for k in DEFAULT_LOSS_KINDS if k in pair_loss_names()]
    assert {p.field for p in space.params} >= {"model.dim", "model.hidden_dim", "train.lr", "loss.temperature"}


@pytest.mark.parametrize("kind,has_temperature", [("semihard_triplet", False), ("supcon", True)])
def test_temperature_is_drawn_only_for_the_contrastive_kinds(kind, has_temperature):
    if kind not in pair_loss_names():
        pytest.skip(f"{kind} is not registered")
    space = default_space([kind])
    fixed = {"loss_kind": kind, "dim": 100, "hidden_dim_tuned": False, "depth": 2, "dropout": 0.1,
             "standardize": True, "weight_decay_tuned": True, "weight_decay": 1e-4, "lr": 1e-3,
             "label_smoothing": 0.05, "temperature": 0.07}
    values = space.sample(FixedTrial(fixed), RunConfig())
    assert ("loss.temperature" in values) is has_temperature
    assert values["model.hidden_dim"] is None and values["train.weight_decay"] == 1e-4
    cfg = apply_values(RunConfig(), values)
    assert cfg.model.depth == 2 and cfg.loss.kind == kind and cfg.loss.temperature == (0.07 if has_temperature else 0.1)


def test_overrides_shrink_drop_and_add_parameters():
    space = override_space(default_space(), {"dim": {"low": 8, "high": 16}, "temperature": None,
                                             "beta": {"field": "loss.beta", "kind": "float", "low": 0.5, "high": 2.0}})
    names = [p.name for p in space.params]
    assert "temperature" not in names and names[-1] == "beta"
    assert next(p for p in space.params if p.name == "dim").high == 16


@pytest.mark.parametrize("overrides,needle", [
    ({"dim": {"low": 64, "high": 8}}, "'dim': needs low <= high"),
    ({"x": {"field": "model.nope", "kind": "int", "low": 1, "high": 2}}, "'model.nope' is not a RunConfig field"),
    ({"lr": {"low": 0.0}}, "a log scale needs low > 0"),
    ({"dim": {"step": 2}}, "'dim': expected an object of"),
    ({"loss_kind": {"choices": ["nope"]}}, "unknown loss kind(s) nope"),
])
def test_a_malformed_space_is_refused_naming_the_parameter(overrides, needle):
    with pytest.raises(ConfigError, match=None) as exc:
        override_space(default_space(), overrides)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_choices_alone_turn_a_range_into_a_choice_and_every_draw_is_one_of_them():
    import optuna

    space = override_space(default_space(["semihard_triplet"]), {"dim": {"choices": [8, 16]}})
    dim = next(p for p in space.params if p.name == "dim")
    assert (dim.kind, dim.choices, dim.low, dim.high) == ("choice", (8, 16), None, None)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = {space.sample(study.ask(), RunConfig())["model.dim"] for _ in range(12)}
    assert drawn == {8, 16}


@pytest.mark.parametrize("overrides,needle", [
    ({"dim": {"low": "8", "high": 16}}, "'dim': low must be a finite number, got string '8'"),
    ({"lr": {"high": [1]}}, "'lr': high must be a finite number, got array"),
    ({"dim": {"kind": "int", "choices": [8, 16]}}, "'dim': 'choices' needs kind 'choice'"),
    ({"standardize": {"low": 0, "high": 1}}, "'standardize': a choice takes 'choices' only"),
    ({"width": {"field": "model.dim", "kind": "int", "low": 8, "high": 16}}, "'dim' and 'width' both tune model.dim"),
    ({"dim": {"choices": 8}}, "'dim': choices must be a list, got number 8"),
    ({"dim": {"choices": ["wide"]}}, "'dim': value 'wide' is not allowed"),
    ({"depth": {"low": 0, "high": 2}}, "'depth': value 0 is not allowed (model.depth must be >= 1"),
    ({"dim": {"log": "yes"}}, "'dim': log must be true or false"),
])
def test_wrong_types_and_two_parameters_for_one_field_are_refused(overrides, needle):
    with pytest.raises(ConfigError) as exc:
        override_space(default_space(), overrides)
    assert needle in str(exc.value) and "\n" not in str(exc.value)
