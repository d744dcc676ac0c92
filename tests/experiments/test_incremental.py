"""Class-incremental protocol (Tables 12–13): class views, the stage plan, its evaluation sets, and no early look at later classes."""

import numpy as np
import pytest

from cvs_tf.data.store import load_feature_set
from experiments.context import Context
from experiments.data import resolve_data
from experiments.errors import ExperimentError
from experiments.incremental import class_ranges, class_view, make_plan, plan_rows
from experiments.kinds.incremental import run_stagewise
from experiments.spec import DataSpec, ExperimentSpec, IncrementalSpec, VariantSpec, load
from tests.helpers import make_toy_featureset


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    """Small synthetic Pascal and CUB, resolved the way the runner does it."""
    cache = tmp_path_factory.mktemp("synth")
    spec = load("table13")
    out = {}
    for d in spec.datasets:
        small = DataSpec(name=d.name, quick_scale=0.1 if d.name == "pascal" else 0.05)
        out[d.name] = (resolve_data(small, data=None, cache=cache, quick=True, log=lambda m: None).featureset(),
                       spec.incremental_for(d))
    return out


def test_class_view_keeps_only_the_classes_in_train_and_val(tmp_path):
    fs = load_feature_set(make_toy_featureset(tmp_path / "t", n_classes=4, n_train=40, paired=True))
    view = class_view(fs, [1, 2])
    for m in fs.modalities:
        for s in ("train", "val"):
            assert set(np.unique(view.y(m, s))) == {1, 2}
            assert view.count(m, s) == len(view.y(m, s)) == int(np.isin(fs.y(m, s), [1, 2]).sum())
        np.testing.assert_array_equal(view.x(m, "test"), fs.x(m, "test"))  # test untouched
    # instance pairing survives: row i of every modality is still the same item
    np.testing.assert_array_equal(view.y("image", "train"), view.y("text", "train"))
    assert view.manifest["class_view"] == {"classes": [1, 2], "splits": ["train", "val"]}
    assert fs.count("image", "train") == 36  # the original is not modified


def test_pascal_plan_matches_table12(stand_ins):
    fs, inc = stand_ins["pascal"]
    plan = make_plan(fs, inc)
    assert plan.stages == [list(range(0, 5)), list(range(5, 10)), list(range(10, 15)), list(range(15, 20))]
    assert [class_ranges(s) for s in plan.stages] == ["1–5", "6–10", "11–15", "16–20"]
    assert plan.part1 == [0, 1, 2, 3, 4] and plan.part2 == list(range(20)) and not plan.zero_shot
    rows = plan_rows(fs, plan, ["image", "text"])
    y = fs.y("image", "test")
    n1 = int(np.isin(y, range(5)).sum())
    for r in rows:  # the same two evaluation sets after every stage
        assert r["part1_items"] == f"image {n1}, text {n1}"
        assert r["part2_items"] == f"image {len(y)}, text {len(y)}"
    # the stages partition the training items
    ytr = fs.y("image", "train")
    assert sum(int(r["train_items"].split(",")[0].split()[1]) for r in rows) == len(ytr)


def test_cub_plan_is_zero_shot_40_40_40_30(stand_ins):
    fs, inc = stand_ins["cub"]
    plan = make_plan(fs, inc)
    assert [len(s) for s in plan.stages] == [40, 40, 40, 30]
    assert plan.stages[0] == list(range(40)) and plan.stages[3] == list(range(120, 150))
    assert plan.part2 == list(range(150, 200)) and plan.zero_shot
    assert plan.part1 == [150, 151, 152, 153, 154] and class_ranges(plan.part1) == "151–155"
    assert not set(plan.part2) & {c for s in plan.stages for c in s}


def test_stage_sizes_must_cover_the_training_classes(stand_ins):
    fs, _ = stand_ins["pascal"]
    with pytest.raises(ExperimentError, match=r"stage sizes \[5, 5\] do not cover its 20"):
        make_plan(fs, IncrementalSpec(stage_sizes=[5, 5]))
    assert [len(s) for s in make_plan(fs, IncrementalSpec(n_stages=3)).stages] == [7, 7, 6]
    cub, _ = stand_ins["cub"]
    with pytest.raises(ExperimentError, match="stage-1 classes have no test items"):
        make_plan(cub, IncrementalSpec(stage_sizes=[75, 75], part1="stage1"))


def test_class_ranges():
    assert class_ranges([0, 1, 2, 6, 8, 9]) == "1–3, 7, 9–10"


@pytest.mark.slow
def test_stagewise_never_sees_a_later_stage_early(tmp_path, monkeypatch):
    """Spy on every FeatureBank the Trainer builds: stage s holds only stage s's classes, in order."""
    import cvs_tf.training.trainer as trainer_mod

    seen = []

    class Spy(trainer_mod.FeatureBank):
        def __init__(self, fs, modalities, split="train"):
            super().__init__(fs, modalities, split)
            seen.append((split, sorted({int(c) for m in modalities for c in np.unique(fs.y(m, split))})))

    monkeypatch.setattr(trainer_mod, "FeatureBank", Spy)
    path = make_toy_featureset(tmp_path / "toy", modalities={"image": 10, "text": 6}, n_classes=6, n_train=60,
                               paired=True, name="toy")
    spec = ExperimentSpec(name="t", title="t", kind="incremental", datasets=[DataSpec(name="toy")],
                          variants=[VariantSpec("stage-wise", {"space": "cvs", "attention": True})],
                          model={"dim": 8}, train={"epochs": 2, "batch_size": 16, "jit": False},
                          incremental=IncrementalSpec(stage_sizes=[2, 2, 2]))
    ctx = Context(exp=spec, seeds=[0], data=str(path), runs=tmp_path / "runs", results=tmp_path / "res",
                  log=lambda m: None)
    data = ctx.resolve(spec.datasets[0])
    fs = data.featureset()
    plan = make_plan(fs, spec.incremental)
    evals, stages = run_stagewise(ctx, data, plan, 0, fs, ["image", "text"])
    assert [s for s, _ in seen] == ["train", "val"] * 3
    assert [labels for _, labels in seen] == [[0, 1], [0, 1], [2, 3], [2, 3], [4, 5], [4, 5]]
    assert [s["classes"] for s in stages] == [[0, 1], [2, 3], [4, 5]]
    assert len(evals) == 3 and all(0 <= v <= 1 for e in evals for v in e.values())
    assert {k[1] for k in evals[0]} == {"part1", "part2"}
