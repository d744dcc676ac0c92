"""The experiment-kind registry: spec validation and dispatch read it, a new kind is one module; the strict spec loader; Figure 27's isolated steps."""

import json

import numpy as np
import pytest

import experiments.kinds as kinds
from experiments import spec as spec_mod
from experiments.context import Context
from experiments.data import resolve_data
from experiments.errors import ExperimentError
from experiments.kinds import Kind, get_kind, kind_names, register_kind
from experiments.report import header_markdown, outputs
from experiments.runner import rerender, run_experiment
from experiments.spec import SpecError, available, spec_from_dict
from tests.experiments import load_or_pending
from tests.helpers import make_toy_featureset


def test_spec_kinds_are_the_registry_and_every_config_names_one():
    assert spec_mod.KINDS == kind_names()
    assert {"cross_modal", "plan", "incremental", "blocks", "timing", "projection", "loss_curves"} <= set(kind_names())
    for name in available():
        spec = load_or_pending(name)  # None: names a preset not shipped yet
        assert spec is None or get_kind(spec.kind).name == spec.kind
    with pytest.raises(SpecError, match="kind must be one of .*got 'nope'"):
        get_kind("nope")


@pytest.fixture
def toy_kind(monkeypatch):
    """A kind defined here, in a test module, registered the way a kind module registers itself."""
    seen = {}

    def run(ctx):
        seen["ctx"] = ctx
        md = header_markdown(ctx, [], ["toy note"]) + ["toy body"]
        return outputs(md, [{"x": 1}], {"format": "cvs_tf.experiment", "kind": ctx.exp.kind, "toy": True})

    monkeypatch.setitem(kinds._KINDS, "toy_kind", None)  # restored (removed) after the test
    register_kind(Kind("toy_kind", run, trains=False, seeded=False))
    return seen


def test_a_kind_registered_outside_the_package_is_validated_and_dispatched(toy_kind, tmp_path):
    exp = spec_from_dict({"name": "toy", "title": "Toy kind", "kind": "toy_kind"}, "toy.json")
    assert "toy_kind" in kind_names()
    paths = run_experiment(Context(exp=exp, results=tmp_path, command="python -m experiments run toy"))
    md = paths["md"].read_text()
    assert toy_kind["ctx"].exp is exp and "toy body" in md and "- toy note" in md
    assert "- seeds:" not in md and "- training:" not in md  # the kind's flags decide the header lines
    assert json.loads(paths["json"].read_text())["toy"] is True
    with pytest.raises(ExperimentError, match="only results of the kind"):  # the toy kind has no render
        rerender("toy", tmp_path)


def test_unknown_kind_names_the_registered_ones(tmp_path):
    with pytest.raises(SpecError, match=r"x.json: kind must be one of .*cross_modal.*got 'magic'"):
        spec_from_dict({"name": "x", "title": "t", "kind": "magic"}, "x.json")


@pytest.mark.parametrize("change, message", [
    ({"datasets": [{"name": "xmedia", "thesis": {"CVS": {"mean": "high"}}}]},
     r"x.json.datasets\[0\].thesis.CVS.mean: expected a number"),
    ({"datasets": [{"name": "xmedia", "scale": True}]}, r"x.json.datasets\[0\].scale: expected a number"),
    ({"quick": {"seeds": 1.5}}, r"x.json.quick.seeds: expected an integer"),
    ({"path": "/elsewhere"}, r"x.json: unknown field\(s\) path"),
])
def test_the_spec_loader_is_the_config_loader(change, message):
    """One strict loader (cvs_tf.config.typed_value): nested values are checked at load, not at render time."""
    data = {"name": "x", "title": "t", "kind": "cross_modal", "variants": [{"name": "CVS"}], **change}
    with pytest.raises(SpecError, match=message):
        spec_from_dict(data, "x.json")


def test_named_datasets_come_from_the_library_lookup(tmp_path, monkeypatch):
    """Embedded sets and $CVS_TF_DATA resolve through cvs_tf.data.registry (its order: the environment first)."""
    from cvs_tf.data.registry import EMBEDDED_ROOT
    from experiments.spec import DataSpec

    monkeypatch.delenv("CVS_TF_DATA", raising=False)
    tux = DataSpec(name="tux12", real_only=True)
    r = resolve_data(tux, data=None, cache=tmp_path / "c", quick=True)
    assert (r.path, r.source, r.synthetic) == (EMBEDDED_ROOT / "tux12", "embedded", False)
    make_toy_featureset(tmp_path / "root" / "tux12", name="tux12")
    monkeypatch.setenv("CVS_TF_DATA", str(tmp_path / "root"))
    r = resolve_data(tux, data=None, cache=tmp_path / "c", quick=True)
    assert (r.path, r.source) == (tmp_path / "root" / "tux12", "$CVS_TF_DATA")


def test_interleaved_rounds_time_every_case_in_turn():
    """Figure 27's cross-check timer: a warm-up call per case, then rounds whose order rotates."""
    from experiments.kinds.timing import interleaved_ms

    order = []
    cases = {name: (lambda name=name: order.append(name)) for name in ("a", "b", "c")}
    ms = interleaved_ms(cases, rounds=3, calls=2, warmup=1)
    assert order[:6] == ["a", "a", "b", "b", "c", "c"]  # first call (tracing) + warm-up, not timed
    assert order[6:] == ["a"] * 2 + ["b"] * 2 + ["c"] * 2 + ["b"] * 2 + ["c"] * 2 + ["a"] * 2 + ["c"] * 2 + ["a"] * 2 + ["b"] * 2
    assert set(ms) == {"a", "b", "c"} and all(v >= 0 for v in ms.values())


@pytest.mark.slow
def test_isolated_steps_train_one_stage_on_a_constant_batch(tmp_path):
    """The step of M-CVS stage 2 gets the modalities of its active pairs (all three), one batch each."""
    from cvs_tf.config import RunConfig
    from cvs_tf.data.store import load_feature_set
    from experiments.kinds.timing import ConstantStep

    fs = load_feature_set(make_toy_featureset(tmp_path / "toy", modalities={"image": 6, "text": 5, "audio": 4}))
    cfg = RunConfig.from_dict({"model": {"dim": 4, "space": "mcvs", "stages": [["image", "text"], ["audio"]]},
                               "train": {"batch_size": 8, "jit": False}}).validate()
    step = ConstantStep(cfg, fs, stage=1)
    assert sorted(step.x) == ["audio", "image", "text"] and all(len(v) == 8 for v in step.y.values())
    before = [w.copy() for w in step.model.get_weights()]
    assert np.isfinite(step()["loss"])
    assert any(not np.array_equal(a, b) for a, b in zip(before, step.model.get_weights()))  # it trained


def test_figure26_needs_the_dataset_whose_feature_sizes_it_counts():
    data = json.loads((spec_mod.CONFIG_DIR / "fig26.json").read_text())
    data["options"]["dims_of"] = "xmedai"
    with pytest.raises(SpecError, match="options.dims_of must be one of xmedia, .*got 'xmedai'"):
        spec_from_dict(data, "fig26.json")
