"""The RunPlan: built once per run (its calls counted), the one place that checks a run's plan, and the plan the model trains."""

import dataclasses
import inspect
import json
from collections import Counter

import numpy as np
import pytest

from cvs_tf.cli.train import main as train
from cvs_tf.config import ConfigError, RunConfig
from cvs_tf.data.store import carve_validation, load_feature_set, save_feature_set
from cvs_tf.models.factory import build_model
from cvs_tf.plan import RunPlan
from cvs_tf.spaces import Space, get_space, rvs
from tests.helpers import tiny_config, write_small_config

FAST = ["--epochs", "1", "--batch-size", "8", "--steps-per-epoch", "2", "--no-jit", "--quiet",
        "--early-stopping", "none"]
RUNS = {"cvs": ["--space", "cvs"], "mcvs": ["--space", "mcvs"], "rvs": ["--space", "rvs", "--reference", "text"]}


def _write_set(path, paired=False, val_fraction=0.2):
    """Three modalities of 4 separable classes, 24 train and 8 test items each (class- or instance-paired)."""
    rng = np.random.default_rng(3)
    labels = {"train": np.arange(24) % 4, "test": np.arange(8) % 4}
    data = {m: {s: ((rng.normal(size=(4, d))[y] + 0.1 * rng.normal(size=(len(y), d))).astype(np.float32), y)
                for s, y in labels.items()} for m, d in (("image", 6), ("text", 5), ("audio", 4))}
    if val_fraction:
        data = carve_validation(data, val_fraction, 0, paired=paired)
    else:  # a set made with --val-fraction 0
        data = {m: {**d, "val": tuple(a[:0] for a in d["train"])} for m, d in data.items()}
    return save_feature_set(path, "planset", data, [f"c{i}" for i in range(4)],
                            pairing="instance" if paired else "class", provenance={"synthetic": True})


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return _write_set(tmp_path_factory.mktemp("plan") / "set")


@pytest.fixture(scope="module")
def fs(dataset):
    return load_feature_set(dataset)


def _config(space, **model) -> RunConfig:
    return tiny_config(space, dim=8, **model).validate()


def _count_calls(monkeypatch, space_name: str) -> Counter:
    """Count the plan's builder and every derivation of the plan it replaced: the space's hooks, the model
    class's own plan, the RVS reference check."""
    space = get_space(space_name)
    calls = Counter()
    targets = [(RunPlan, "build"), (type(space), "default_stages"), (Space, "plan"), (type(space), "check_options"),
               (space.model_class, "plan_of"), (space.model_class, "make_plan"), (space.model_class, "default_stages"),
               (rvs, "check_reference")]
    for owner, name in targets:
        original, raw = getattr(owner, name), inspect.getattr_static(owner, name)
        key = f"{owner.__name__.rsplit('.', 1)[-1]}.{name}"

        def spy(*args, _key=key, _original=original, **kwargs):
            calls[_key] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(owner, name, staticmethod(spy) if isinstance(raw, (staticmethod, classmethod)) else spy)
    return calls


@pytest.mark.trains
@pytest.mark.parametrize("space", [pytest.param(s, marks=pytest.mark.slow) if s == "mcvs" else s for s in sorted(RUNS)])
def test_a_run_builds_its_plan_once_and_nothing_else_derives_it(space, dataset, fs, tmp_path, monkeypatch):
    calls = _count_calls(monkeypatch, space)
    out = tmp_path / "run"
    assert train([*RUNS[space], "--dataset", str(dataset), "--config", str(write_small_config(tmp_path / "small.json", 8)), *FAST,
                  "--out", str(out)]) == 0
    in_run = Counter(calls)
    assert in_run["RunPlan.build"] == 1
    saved = json.loads((out / "config.json").read_text())
    cfg = RunConfig.from_dict({k: v for k, v in saved.items() if k != "resolved"})
    calls.clear()
    plan = RunPlan.build(cfg, fs)  # one build on its own: what a run may call, and nothing more
    assert in_run == calls and sum(calls.values()) > 1
    assert not any(key.endswith(".make_plan") for key in in_run)  # the model took the plan, not its own
    assert saved["resolved"]["stages"] == plan.stage_lists()
    if space == "rvs":
        assert in_run["rvs.check_reference"] >= 1 and plan.reference == "text"


@pytest.mark.parametrize("space,model", [("cvs", {}), ("mcvs", {}), ("rvs", {"reference": "audio"}),
                                         ("mcvs", {"stages": [["text", "audio"], ["image"]]})])
def test_the_model_trains_the_plan_it_would_derive_itself(space, model, fs):
    plan = RunPlan.build(_config(space, **model), fs)
    built = build_model(_config(space, **model), fs, plan)
    reloaded = type(built).from_config(built.get_config())  # a loaded model works its plan out itself
    assert built.plan == reloaded.plan == plan.model_plan()
    assert built.stages == plan.stage_lists() and tuple(built.all_modalities) == plan.modalities
    assert built.reference == plan.reference == model.get("reference")


def test_the_plan_is_immutable(fs):
    plan = RunPlan.build(_config("rvs", reference="image"), fs)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.stages = ()
    with pytest.raises(TypeError):
        plan.options["reference"] = "text"
    assert plan.stages == (("image", "text"), ("audio",)) and plan.pairs == ((("image", "text"),), (("image", "audio"),))
    assert plan.batch_per_replica == {"train": 128, "val": 128} and plan.validation


@pytest.mark.parametrize("space,model,needle", [
    ("cvs", {"modalities": ["image", "video"]}, "unknown modality video for dataset planset"),
    ("cvs", {"stages": [["image", "text"], ["audio"]]}, "space cvs trains every modality in one stage"),
    ("rvs", {"reference": "video"}, "reference modality 'video' is not in dataset planset"),
    ("rvs", {"reference": "audio", "modalities": ["image", "text"]}, "must include the RVS reference 'audio'"),
    ("mcvs", {"stages": [["image"], ["text"]]}, "M-CVS stage 1 needs two modalities"),
])
def test_every_plan_error_comes_from_the_builder(space, model, needle, fs):
    with pytest.raises(ConfigError, match=needle):
        RunPlan.build(_config(space, **model), fs)


def test_the_splits_and_the_replicas_are_checked_there_too(tmp_path):
    paired = load_feature_set(_write_set(tmp_path / "paired", paired=True))  # 24 items, a batch of all of them
    cfg = _config("cvs")
    assert RunPlan.build(cfg, paired, replicas=4).batch_per_replica["train"] == len(paired.x("image", "train")) // 4
    cfg.train.batch_size = 9
    assert RunPlan.build(cfg, paired).batch_per_replica["train"] == 9
    with pytest.raises(ConfigError, match="train.batch_size 9, train split: a global batch of 9 rows"):
        RunPlan.build(cfg, paired, replicas=2)
    no_val = load_feature_set(_write_set(tmp_path / "noval", val_fraction=0))
    with pytest.raises(ConfigError, match="has no validation items for image, text, audio"):
        RunPlan.build(_config("cvs"), no_val)
    relaxed = RunPlan.build(_config("cvs"), no_val, check_splits=False)  # a model outside a run
    assert not relaxed.validation and "val" not in relaxed.batch_per_replica
