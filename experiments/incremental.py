"""Stage-wise class-incremental learning (thesis §3.4, Tables 12–13): class views of a feature set, the stage plan and its two evaluation sets.

The kinds ``plan`` (Table 12) and ``incremental`` (Table 13) in :mod:`experiments.kinds` run them.

Protocol (thesis §3.4 and §5.1.F; the choices the thesis leaves open are marked *choice*):

* The training classes are cut, in class-id order, into groups: Pascal 5/5/5/5 of its 20
  classes; CUB (zero-shot) 40/40/40/30 of its 150 seen classes.
* Stage ``s`` trains an image+text space on the train and validation items of group ``s`` only
  (a :func:`class_view` of the feature set: the rows of the other classes are not in it, so no
  batch can ever hold a later stage's class). Early stopping and the choice of the best epoch
  use that stage's validation items; the test split is never used for either.
* *Choice:* stage ``s + 1`` continues from the weights stage ``s`` ended with, and **every
  weight stays trainable** (branches, attention block, classifier); a fresh Adam per stage.
  The thesis "use[s] the model from the previous stage and add[s] new class information to the
  network by training it for these additional new classes" and reports the stage-1 classes'
  scores *falling* across stages, which frozen weights could not produce; "do not fine-tune the
  model for the previously existing stages" we read as: the earlier classes' data is not
  revisited (no replay). The loss is "calculated with respect to the K categories that are being
  added": the shared classifier keeps all its outputs, but only the stage's classes appear.
* After every stage the model is evaluated (test split, i2t and t2i mAP@K) on two sets
  (Table 12): part 1 -- the test items of the stage-1 classes (both the queries and the
  retrieval set); part 2 -- the entire test set. CUB is zero-shot: its test set holds only the
  50 unseen classes, so the stage-1 (seen) classes have no test items; *choice:* part 1 is the
  test items of the first 5 unseen classes (Table 13's row says "5 categories"), part 2 all 50.
* The comparison column is a CVS trained in one go on every training class, evaluated on the
  same two sets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from cvs_tf.data.store import FeatureSet, FeatureSetError
from experiments.errors import ExperimentError, SpecError
from experiments.schema import PART1_RULES, ExperimentSpec, IncrementalSpec

DIRECTIONS = {"i2t": ("image", "text"), "t2i": ("text", "image")}
PARTS = ("part1", "part2")
STAGE1 = PART1_RULES[0]


# --------------------------------------------------------------------------- class views


def class_mask(y: np.ndarray, classes) -> np.ndarray:
    """Rows whose (single) label is one of ``classes``."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise FeatureSetError("class-incremental views need single-label data (got multi-hot labels)")
    return np.isin(y, np.asarray(list(classes), dtype=y.dtype))


def class_view(fs: FeatureSet, classes, splits=("train", "val")) -> FeatureSet:
    """A feature set holding, in ``splits``, only the rows of ``classes`` (other splits unchanged).

    Instance-paired sets keep their pairing: every modality of an item has the same label, so the
    same rows survive in each. The manifest's counts are updated and ``class_view`` records what
    was kept.
    """
    classes = sorted(int(c) for c in classes)
    manifest = json.loads(json.dumps(fs.manifest))
    arrays = dict(fs.arrays)
    for (m, s), (x, y) in fs.arrays.items():
        if s in splits:
            keep = class_mask(y, classes)
            arrays[(m, s)] = (np.asarray(x)[keep], np.asarray(y)[keep])
            manifest["modalities"][m]["counts"][s] = int(keep.sum())
    manifest["class_view"] = {"classes": classes, "splits": list(splits)}
    return FeatureSet(fs.path, manifest, arrays)


# --------------------------------------------------------------------------- the plan


@dataclass
class StagePlan:
    """Classes trained per stage and the classes of the two evaluation sets."""

    stages: list[list[int]]
    part1: list[int]
    part2: list[int]
    train_classes: list[int]
    zero_shot: bool
    part1_rule: str


def training_classes(fs: FeatureSet, modalities) -> list[int]:
    """The zero-shot 'seen' classes if the set declares them, else every class with training items."""
    zs = fs.manifest.get("zero_shot") or {}
    if zs.get("seen"):
        return sorted(int(c) for c in zs["seen"])
    present = set()
    for m in modalities:
        present |= {int(c) for c in np.unique(np.asarray(fs.y(m, "train")))}
    return sorted(present)


def test_classes(fs: FeatureSet, modalities) -> list[int]:
    present = set()
    for m in modalities:
        present |= {int(c) for c in np.unique(np.asarray(fs.y(m, "test")))}
    return sorted(present)


def make_plan(fs: FeatureSet, inc: IncrementalSpec) -> StagePlan:
    """Cut the training classes into stages (in class-id order) and pick the two evaluation sets."""
    mods = list(inc.modalities)
    train = training_classes(fs, mods)
    if inc.stage_sizes is not None:
        sizes = list(inc.stage_sizes)
    else:
        base, extra = divmod(len(train), inc.n_stages)
        sizes = [base + (1 if i < extra else 0) for i in range(inc.n_stages)]
    if sum(sizes) != len(train) or min(sizes) < 1:
        raise ExperimentError(f"{fs.name}: stage sizes {sizes} do not cover its {len(train)} training classes")
    bounds = np.cumsum([0] + sizes)
    stages = [train[bounds[i]:bounds[i + 1]] for i in range(len(sizes))]
    tests = test_classes(fs, mods)
    zero_shot = not set(tests) & set(train)
    if inc.part1 == STAGE1:
        part1 = [c for c in stages[0] if c in set(tests)]
        if not part1:
            raise ExperimentError(f"{fs.name}: the stage-1 classes have no test items (zero-shot set? use "
                                  "part1 = first_test_classes)")
    else:
        part1 = tests[: inc.part1_count]
    return StagePlan(stages, part1, tests, train, zero_shot, inc.part1)


def class_ranges(classes) -> str:
    """1-based class ids as compact ranges, the thesis's way: ``1–5``, ``1–3, 7``."""
    ids = sorted(int(c) + 1 for c in classes)
    out, start = [], None
    for i, c in enumerate(ids):
        if start is None:
            start = c
        if i + 1 == len(ids) or ids[i + 1] != c + 1:
            out.append(f"{start}–{c}" if c != start else f"{c}")
            start = None
    return ", ".join(out)


def part_label(plan: StagePlan, part: str) -> str:
    if part == "part2":
        return f"entire test set ({len(plan.part2)} {'unseen ' if plan.zero_shot else ''}classes: {class_ranges(plan.part2)})"
    if plan.part1_rule == STAGE1:
        return f"stage-1 classes ({class_ranges(plan.part1)})"
    return f"first {len(plan.part1)} {'unseen ' if plan.zero_shot else 'test '}classes ({class_ranges(plan.part1)})"


def _counts(fs: FeatureSet, mods, split: str) -> str:
    return ", ".join(f"{m} {fs.count(m, split)}" for m in mods)


def plan_rows(fs: FeatureSet, plan: StagePlan, mods) -> list[dict]:
    """One row per stage: trained classes, train/val items, and the items of both evaluation sets."""
    rows = []
    p1 = class_view(fs, plan.part1, ("test",))
    p2 = class_view(fs, plan.part2, ("test",))
    for s, classes in enumerate(plan.stages):
        view = class_view(fs, classes, ("train", "val"))
        rows.append({
            "stage": s + 1, "train_classes": class_ranges(classes), "n_classes": len(classes),
            "train_items": _counts(view, mods, "train"), "val_items": _counts(view, mods, "val"),
            "part1": part_label(plan, "part1"), "part1_items": _counts(p1, mods, "test"),
            "part2": part_label(plan, "part2"), "part2_items": _counts(p2, mods, "test"),
            "classes": list(classes),
        })
    return rows


def check_incremental(spec: ExperimentSpec, where: str) -> None:
    """Spec check of the class-incremental kinds: every dataset has one valid plan."""
    for i, d in enumerate(spec.datasets):
        inc = spec.incremental_for(d)
        if inc is None:
            raise SpecError(f"{where}: kind {spec.kind} needs an 'incremental' section (datasets[{i}])")
        if (inc.stage_sizes is None) == (inc.n_stages is None):
            raise SpecError(f"{where}: incremental: give exactly one of stage_sizes and n_stages")
        if inc.part1 not in PART1_RULES:
            raise SpecError(f"{where}: incremental.part1 must be one of {', '.join(PART1_RULES)}, got {inc.part1!r}")


__all__ = ["DIRECTIONS", "PARTS", "StagePlan", "check_incremental", "class_mask", "class_ranges", "class_view",
           "make_plan", "part_label", "plan_rows"]
