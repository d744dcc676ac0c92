"""The experiment spec as dataclasses: one thesis table or figure, its datasets, variants, claims and class-incremental plan.

Cell keys of ``thesis`` (per dataset, per variant):

* cross-modal tables: ``"image>text"`` (query > retrieval), ``"image>mean"`` (row mean) and
  ``"mean"`` (the overall mean of the n(n-1) ordered pairs);
* the class-incremental table: ``"<part>.<direction>.s<stage>"`` (e.g. ``"part1.i2t.s1"``) for
  the stage-wise model and ``"<part>.<direction>"`` for the comparison CVS.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from cvs_tf.config import RunConfig
from experiments.errors import SpecError


def preset_fields(name: str) -> dict[str, dict]:
    """Every field preset ``name`` governs, ``{section: {field: value}}`` (its own values, else the defaults)."""
    from cvs_tf.presets import PRESET_FIELDS, load_preset

    values = load_preset(name).to_dict()
    return {section: {f: values[section][f] for f in fields} for section, fields in PRESET_FIELDS.items()}

#: ``greater``: a beats b beyond two standard errors of the paired seed differences; ``greater_every_seed``: a beats
#: b in every seed; ``close``: a within ``tolerance`` of b (experiments.claims)
CLAIM_KINDS = ("greater", "greater_every_seed", "close")
#: part 1 of a class-incremental evaluation: the stage-1 classes' test items, or the first N test classes'
PART1_RULES = ("stage1", "first_test_classes")


@dataclass
class VariantSpec:
    """One trained configuration (a column of a thesis table): overrides of the run config.

    ``preset`` names a recipe of :mod:`cvs_tf.presets` (``thesis``, ``best``) applied first; see
    :meth:`ExperimentSpec.run_config` for the order of the layers.
    """

    name: str
    model: dict = field(default_factory=dict)  # ModelConfig fields (space, attention, stages, ...)
    loss: dict = field(default_factory=dict)  # LossConfig fields
    train: dict = field(default_factory=dict)  # TrainConfig fields for this variant only
    preset: str | None = None  # a cvs_tf.presets name applied first; None: the library defaults


@dataclass
class DataSpec:
    """A dataset: a stand-in / converter name (xmedia, pascal, ...) or a real set (tux12, digits10)."""

    name: str
    title: str = ""
    modalities: list[str] | None = None  # None: every modality of the set
    scale: float = 1.0  # stand-in scale of a full run (1.0 = the published counts)
    quick_scale: float = 0.1  # stand-in scale under --quick
    multi_label: bool = False  # stand-in with multi-hot labels (NUS-WIDE only)
    real_only: bool = False  # no stand-in exists: a missing set is an error, not a fallback
    thesis: dict[str, dict[str, float]] = field(default_factory=dict)  # variant -> cell -> value
    context: dict[str, dict[str, float]] = field(default_factory=dict)  # published peers -> cell -> value
    incremental: IncrementalSpec | None = None  # overrides the experiment's class-incremental plan

    @property
    def label(self) -> str:
        return self.title or self.name


@dataclass
class QuickSpec:
    """What ``--quick`` changes: seeds, training settings, model settings."""

    seeds: int = 1
    train: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)


@dataclass
class ClaimSpec:
    """A thesis claim checked on our numbers: ``greater`` (a beats b) or ``close`` (a within tolerance of b)."""

    text: str
    kind: str
    a: str
    b: str
    tolerance: float = 0.1  # close: |a - b| <= tolerance * b on the overall mean


@dataclass
class IncrementalSpec:
    """Class-incremental stage plan (thesis §3.4, Table 12) and its two evaluation sets."""

    stage_sizes: list[int] | None = None  # classes per stage, e.g. [5, 5, 5, 5] or [40, 40, 40, 30]
    n_stages: int | None = None  # or: split the training classes evenly into this many stages
    part1: str = PART1_RULES[0]  # one of PART1_RULES
    part1_count: int = 5
    modalities: list[str] = field(default_factory=lambda: ["image", "text"])
    comparison: bool = True  # also train a CVS on every training class (Table 13's last column)


@dataclass
class ExperimentSpec:
    """One thesis table or figure as data."""

    name: str
    title: str
    kind: str
    datasets: list[DataSpec] = field(default_factory=list)
    variants: list[VariantSpec] = field(default_factory=list)
    thesis_ref: str = ""
    protocols: list[str] = field(default_factory=lambda: ["independent"])  # cvs_tf.evaluation.protocols
    k: int = 50
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    model: dict = field(default_factory=dict)  # ModelConfig overrides shared by every variant
    loss: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)  # TrainConfig overrides of a full run
    quick: QuickSpec = field(default_factory=QuickSpec)
    claims: list[ClaimSpec] = field(default_factory=list)
    incremental: IncrementalSpec | None = None
    options: dict = field(default_factory=dict)  # kind-specific settings (figures)
    notes: list[str] = field(default_factory=list)
    path: str | None = field(default=None, init=False)  # where it was loaded from (set by the loader)

    def incremental_for(self, data: DataSpec) -> IncrementalSpec | None:
        """The class-incremental plan of one dataset (its own, else the experiment's)."""
        return data.incremental or self.incremental

    def variant(self, name: str) -> VariantSpec:
        for v in self.variants:
            if v.name == name:
                return v
        raise SpecError(f"{self.name}: no variant {name!r} (has {', '.join(v.name for v in self.variants)})")

    def seeds_for(self, quick: bool, n: int | None = None) -> list[int]:
        """Seeds of this invocation: ``--seeds N`` gives 0..N-1; --quick defaults to ``quick.seeds``."""
        if n is not None:
            return list(range(n))
        return list(range(self.quick.seeds)) if quick else list(self.seeds)

    def run_config(self, variant: VariantSpec, data: DataSpec, *, dataset: str, seed: int,
                   quick: bool = False) -> RunConfig:
        """The RunConfig of one (variant, dataset, seed), each layer over the one before it.

        Model and loss: the library defaults, the experiment's shared settings, the variant's preset,
        ``--quick``'s model settings, the variant's own fields. Training: the defaults, the preset, the
        experiment's training settings (one budget for every row), ``--quick``'s, the variant's own.
        An unknown preset is a ``ConfigError`` naming the shipped ones.
        """
        preset = preset_fields(variant.preset) if variant.preset else {}
        quick_spec = self.quick if quick else QuickSpec()
        model = {**self.model, **preset.get("model", {}), **quick_spec.model, **variant.model}
        if data.modalities and "modalities" not in model and not model.get("stages"):
            model["modalities"] = list(data.modalities)
        loss = {**self.loss, **preset.get("loss", {}), **variant.loss}
        train = {**preset.get("train", {}), **self.train, **quick_spec.train, **variant.train,
                 "dataset": str(dataset), "seed": int(seed)}
        return RunConfig.from_dict({"model": model, "loss": loss, "train": train}).validate()

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out.pop("path", None)
        return out
