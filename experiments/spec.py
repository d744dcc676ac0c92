"""Typed experiment specifications: one JSON file per thesis table or figure in experiments/configs/, loaded strictly.

A config names the dataset(s) and modalities, the variants to train (each a set of
``ModelConfig`` overrides: space, stage plan, attention, ablation switches, RVS reference),
the test-time protocol(s), the seeds, the training settings of a full run and of ``--quick``,
and the thesis numbers to set beside ours. Unknown fields are refused with a message that
names them (:class:`SpecError`), and every variant is checked by building its ``RunConfig``.

Cell keys of ``thesis`` (per dataset, per variant):

* cross-modal tables: ``"image>text"`` (query > retrieval), ``"image>mean"`` (row mean) and
  ``"mean"`` (the overall mean of the n(n-1) ordered pairs);
* the class-incremental table: ``"<part>.<direction>.s<stage>"`` (e.g. ``"part1.i2t.s1"``) for
  the stage-wise model and ``"<part>.<direction>"`` for the comparison CVS.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from cvs_tf.config import ConfigError, RunConfig

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
KINDS = ("cross_modal", "plan", "incremental", "blocks", "timing", "projection", "loss_curves")
CLAIM_KINDS = ("greater", "close")
PART1_RULES = ("stage1", "first_test_classes")
#: Names that run several experiments (``python -m experiments run figures``).
GROUPS = {
    "figures": ["fig9", "fig22_24", "fig25", "fig26", "fig27"],
}


class SpecError(ValueError):
    """An experiment config is missing, malformed or inconsistent; the message names the file and field."""


@dataclass
class VariantSpec:
    """One trained configuration (a column of a thesis table): overrides of the run config."""

    name: str
    model: dict = field(default_factory=dict)  # ModelConfig fields (space, attention, stages, ...)
    loss: dict = field(default_factory=dict)  # LossConfig fields
    train: dict = field(default_factory=dict)  # TrainConfig fields for this variant only


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
    part1: str = "stage1"  # stage1: test items of the stage-1 classes; first_test_classes: of the first N test classes
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
    protocols: list[str] = field(default_factory=lambda: ["independent"])
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
    path: str | None = None  # where it was loaded from (set by the loader)

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
        """The RunConfig of one (variant, dataset, seed): shared settings, then --quick, then the variant."""
        model = {**self.model, **(self.quick.model if quick else {}), **variant.model}
        if data.modalities and "modalities" not in model and not model.get("stages"):
            model["modalities"] = list(data.modalities)
        train = {**self.train, **(self.quick.train if quick else {}), **variant.train,
                 "dataset": str(dataset), "seed": int(seed)}
        return RunConfig.from_dict({"model": model, "loss": {**self.loss, **variant.loss}, "train": train}).validate()

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out.pop("path", None)
        return out


# --------------------------------------------------------------------------- strict loading


def _convert(hint, value, where: str):
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, where)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise SpecError(f"{where}: expected a list, got {type(value).__name__}")
        return [_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)] if args else list(value)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise SpecError(f"{where}: expected an object, got {type(value).__name__}")
        return dict(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SpecError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise SpecError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise SpecError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _build(cls, data, where: str):
    if not isinstance(data, dict):
        raise SpecError(f"{where}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "path"}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(fields))})")
    missing = [n for n, f in fields.items() if n not in data
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise SpecError(f"{where}: missing field(s) {', '.join(missing)}")
    return cls(**{k: _convert(hints[k], v, f"{where}.{k}") for k, v in data.items()})


def validate(spec: ExperimentSpec, where: str) -> ExperimentSpec:
    """Check the cross-field rules (kinds, variants buildable, thesis cells name known variants)."""
    if spec.kind not in KINDS:
        raise SpecError(f"{where}: kind must be one of {', '.join(KINDS)}, got {spec.kind!r}")
    names = [v.name for v in spec.variants]
    if len(set(names)) != len(names):
        raise SpecError(f"{where}: variants: names must be unique, got {names}")
    if spec.k < 1:
        raise SpecError(f"{where}: k must be >= 1, got {spec.k}")
    if not spec.seeds:
        raise SpecError(f"{where}: seeds: need at least one seed")
    for i, d in enumerate(spec.datasets):
        if not 0 < d.scale <= 1 or not 0 < d.quick_scale <= 1:
            raise SpecError(f"{where}: datasets[{i}]: scale and quick_scale must be in (0, 1]")
        for v in d.thesis:
            if v not in names and spec.kind in ("cross_modal", "incremental"):
                raise SpecError(f"{where}: datasets[{i}].thesis: {v!r} is not a variant ({', '.join(names)})")
        for variant in spec.variants:
            for quick in (False, True):
                try:
                    spec.run_config(variant, d, dataset=d.name, seed=0, quick=quick)
                except ConfigError as exc:
                    raise SpecError(f"{where}: variant {variant.name!r}: {exc}") from None
    for c in spec.claims:
        if c.kind not in CLAIM_KINDS:
            raise SpecError(f"{where}: claims: kind must be one of {', '.join(CLAIM_KINDS)}, got {c.kind!r}")
        for v in (c.a, c.b):
            if v not in names:
                raise SpecError(f"{where}: claims: {v!r} is not a variant ({', '.join(names)})")
    if spec.kind in ("plan", "incremental"):
        for i, d in enumerate(spec.datasets):
            inc = d.incremental or spec.incremental
            if inc is None:
                raise SpecError(f"{where}: kind {spec.kind} needs an 'incremental' section (datasets[{i}])")
            if (inc.stage_sizes is None) == (inc.n_stages is None):
                raise SpecError(f"{where}: incremental: give exactly one of stage_sizes and n_stages")
            if inc.part1 not in PART1_RULES:
                raise SpecError(f"{where}: incremental.part1 must be one of {', '.join(PART1_RULES)}, got {inc.part1!r}")
    from cvs_tf.evaluation.protocols import parse_protocol

    for p in spec.protocols:
        try:
            parse_protocol(p)
        except ValueError as exc:
            raise SpecError(f"{where}: protocols: {exc}") from None
    return spec


def spec_from_dict(data: dict, where: str) -> ExperimentSpec:
    """An experiment spec from a dict (e.g. the copy stored in a results JSON), checked like a file."""
    return validate(_build(ExperimentSpec, data, where), where)


def load_spec(path: str | Path) -> ExperimentSpec:
    """Load and validate one experiment config file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"{path}: no such experiment config") from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path}: not valid JSON ({exc})") from None
    spec = _build(ExperimentSpec, data, str(path.name))
    if spec.name != path.stem:
        raise SpecError(f"{path.name}: name {spec.name!r} must equal the file name {path.stem!r}")
    spec.path = str(path)
    return validate(spec, path.name)


def available(config_dir: Path = CONFIG_DIR) -> list[str]:
    """Names of every experiment config, tables first (table5 < table10), then figures, then the rest."""
    names = [p.stem for p in config_dir.glob("*.json")]

    def key(n: str):
        m = re.fullmatch(r"(table|fig)(\d+)(.*)", n)
        return (0 if m and m[1] == "table" else 1 if m else 2, int(m[2]) if m else 0, n)

    return sorted(names, key=key)


def expand(names: list[str], config_dir: Path = CONFIG_DIR) -> list[str]:
    """Experiment names with the groups ``figures`` and ``all`` expanded, in order, without repeats."""
    known = available(config_dir)
    out: list[str] = []
    for n in names:
        group = known if n == "all" else GROUPS.get(n, [n])
        for g in group:
            if g not in known:
                raise SpecError(f"{g}: no such experiment (known: {', '.join(known + ['figures', 'all'])})")
            if g not in out:
                out.append(g)
    return out


def load(name: str, config_dir: Path = CONFIG_DIR) -> ExperimentSpec:
    """Load the config of an experiment by name."""
    path = config_dir / f"{name}.json"
    if not path.is_file():
        raise SpecError(f"{name}: no such experiment (known: {', '.join(available(config_dir) + ['figures', 'all'])})")
    return load_spec(path)
