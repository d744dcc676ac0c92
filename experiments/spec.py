"""Experiment configs: one JSON file per thesis table or figure in experiments/configs/, loaded strictly and validated.

A config names the dataset(s) and modalities, the variants to train (each a set of
``ModelConfig`` overrides: space, stage plan, attention, ablation switches, RVS reference),
the test-time protocol(s), the seeds, the training settings of a full run and of ``--quick``,
and the thesis numbers to set beside ours (the dataclasses are in :mod:`experiments.schema`).
Unknown fields are refused with a message that names them (:class:`SpecError`), the kind must
be a registered one (:mod:`experiments.kinds`), and every variant is checked by building its
``RunConfig``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from cvs_tf.config import ConfigError, typed_value
from cvs_tf.evaluation.protocols import parse_protocol
from experiments.errors import SpecError
from experiments.kinds import (  # noqa: F401  (importing a kind module registers it)
    blocks,
    cross_modal,
    get_kind,
    incremental,
    kind_names,
    loss_curves,
    plan,
    projection,
    timing,
)
from experiments.oracle import LEAK_TITLE, ORACLE
from experiments.schema import (
    CLAIM_KINDS,
    ClaimSpec,
    DataSpec,
    ExperimentSpec,
    IncrementalSpec,
    QuickSpec,
    VariantSpec,
)

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
#: The built-in experiment kinds (the registry's names once the kind modules above are imported).
KINDS = kind_names()
#: Names that run several experiments (``python -m experiments run figures``).
GROUPS = {
    "figures": ["fig9", "fig22_24", "fig25", "fig26", "fig27"],
    "real": ["real_tux12", "real_digits10", "real_tux12_ablation", "real_digits10_ablation", "real_tux12_recipes",
             "real_digits10_recipes", "real_tux12_selection", "real_digits10_selection", "real_furniture_selection",
             "real_instance", "real_xbm", "real_xbm_triplet", "real_xbm_supcon"],
    "selection": ["real_tux12_selection", "real_digits10_selection", "real_furniture_selection"],
}


def _typed(data, where: str) -> ExperimentSpec:
    try:
        return typed_value(ExperimentSpec, data, where)
    except ConfigError as exc:
        raise SpecError(str(exc)) from None


def validate(spec: ExperimentSpec, where: str) -> ExperimentSpec:
    """Check the cross-field rules (kind, variants buildable, thesis cells and claims name known variants)."""
    try:
        kind = get_kind(spec.kind)
    except SpecError as exc:
        raise SpecError(f"{where}: {exc}") from None
    names = [v.name for v in spec.variants]
    if len(set(names)) != len(names):
        raise SpecError(f"{where}: variants: names must be unique, got {names}")
    if spec.k < 1:
        raise SpecError(f"{where}: k must be >= 1, got {spec.k}")
    if not spec.seeds:
        raise SpecError(f"{where}: seeds: need at least one seed")
    for i, d in enumerate(spec.datasets):
        _check_dataset(d, f"{where}: datasets[{i}]", names if kind.thesis_by_variant else None)
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
    if kind.check is not None:
        kind.check(spec, where)
    _check_protocols(spec.protocols, kind, where)
    return spec


def _check_protocols(protocols: list[str], kind, where: str) -> None:
    """The library's protocols, and the experiments-only ``oracle-pairs`` diagnostic where the kind offers it."""
    if len(set(protocols)) != len(protocols):
        raise SpecError(f"{where}: protocols: listed twice in {protocols}")
    for p in protocols:
        if p == ORACLE and kind.oracle:
            continue
        if p == ORACLE:
            raise SpecError(f"{where}: protocols: {ORACLE} ({LEAK_TITLE}) is offered by the cross_modal kind only")
        try:
            parse_protocol(p)
        except ValueError as exc:
            raise SpecError(f"{where}: protocols: {exc}") from None


def _check_dataset(d: DataSpec, where: str, variants: list[str] | None) -> None:
    if not 0 < d.scale <= 1 or not 0 < d.quick_scale <= 1:
        raise SpecError(f"{where}: scale and quick_scale must be in (0, 1]")
    for v in d.thesis if variants is not None else ():
        if v not in variants:
            raise SpecError(f"{where}.thesis: {v!r} is not a variant ({', '.join(variants)})")


def spec_from_dict(data: dict, where: str) -> ExperimentSpec:
    """An experiment spec from a dict (e.g. the copy stored in a results JSON), checked like a file."""
    return validate(_typed(data, where), where)


def load_spec(path: str | Path) -> ExperimentSpec:
    """Load and validate one experiment config file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"{path}: no such experiment config") from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path}: not valid JSON ({exc})") from None
    spec = _typed(data, path.name)
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


__all__ = ["CONFIG_DIR", "GROUPS", "KINDS", "ClaimSpec", "DataSpec", "ExperimentSpec", "IncrementalSpec", "QuickSpec",
           "SpecError", "VariantSpec", "available", "expand", "load", "load_spec", "spec_from_dict", "validate"]
